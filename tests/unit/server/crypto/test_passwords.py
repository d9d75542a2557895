"""Argon2PasswordHasher: argon2id at the configured cost, computed off the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest
from argon2 import extract_parameters

from domain.values import Password
from server.crypto.passwords import (
    HASH_THREAD_NICENESS,
    Argon2PasswordHasher,
    yield_cpu_to_other_threads,
)
from server.refusals import PasswordHashQueueFull


@pytest.fixture
def hasher() -> Iterator[Argon2PasswordHasher]:
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19456, parallelism=1, workers=2)
    yield hasher
    hasher.shutdown()


async def test_hash_is_argon2id_with_the_configured_cost(hasher: Argon2PasswordHasher) -> None:
    encoded = await hasher.hash(Password.parse("correct horse battery"))

    parameters = extract_parameters(encoded)
    assert encoded.startswith("$argon2id$")
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (2, 19456, 1)
    assert "correct horse battery" not in encoded


async def test_verify_accepts_the_password_and_refuses_others_and_garbage(
    hasher: Argon2PasswordHasher,
) -> None:
    encoded = await hasher.hash(Password.parse("correct horse battery"))

    assert await hasher.verify(encoded, Password.parse("correct horse battery"))
    assert not await hasher.verify(encoded, Password.parse("wrong horse battery"))
    assert not await hasher.verify("not-a-hash", Password.parse("correct horse battery"))


async def test_the_event_loop_keeps_turning_while_passwords_are_hashed(
    hasher: Argon2PasswordHasher,
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(hasher.hash(Password.parse(f"password number {i}")) for i in range(4)))
    ticking.cancel()

    assert ticks >= 5, "hashing blocked the event loop"


def test_hashing_threads_run_nicer_than_the_event_loop_thread() -> None:
    loop_thread = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def hash_thread_priority() -> None:
        yield_cpu_to_other_threads()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    worker = threading.Thread(target=hash_thread_priority)
    worker.start()
    worker.join(timeout=10)

    assert seen == [min(19, loop_thread + HASH_THREAD_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_thread


async def test_the_hashers_threads_are_the_nicer_ones(hasher: Argon2PasswordHasher) -> None:
    loop_thread = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    await hasher.hash(Password.parse("correct horse battery"))

    hash_threads = [t for t in threading.enumerate() if t.name.startswith("argon2")]
    assert hash_threads
    for thread in hash_threads:
        assert thread.native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) > loop_thread


async def test_beyond_the_waiting_bound_a_hash_is_refused_at_once_and_the_rest_complete() -> None:
    hasher = Argon2PasswordHasher(
        time_cost=2, memory_kib=19456, parallelism=1, workers=1, max_waiting=2
    )
    try:
        password = Password.parse("correct horse battery")
        accepted = [asyncio.ensure_future(hasher.hash(password)) for _ in range(3)]
        await asyncio.sleep(0)
        assert hasher.in_pool == 3

        with pytest.raises(PasswordHashQueueFull, match="2 password checks waiting"):
            await hasher.verify(hasher.dummy_hash, password)
        with pytest.raises(PasswordHashQueueFull):
            await hasher.hash(password)

        hashes = await asyncio.gather(*accepted)
        assert await hasher.verify(hashes[0], password)  # room again
        assert hasher.in_pool == 0
    finally:
        hasher.shutdown()


async def test_a_hash_whose_caller_gave_up_frees_its_place() -> None:
    hasher = Argon2PasswordHasher(
        time_cost=2, memory_kib=19456, parallelism=1, workers=1, max_waiting=1
    )
    try:
        password = Password.parse("correct horse battery")
        running = asyncio.ensure_future(hasher.hash(password))
        waiting = asyncio.ensure_future(hasher.hash(password))
        await asyncio.sleep(0)
        waiting.cancel()
        await running
        for _ in range(100):  # the cancelled one's place is released from the pool's side
            if hasher.in_pool == 0:
                break
            await asyncio.sleep(0.01)

        assert hasher.in_pool == 0
        assert await hasher.verify(await hasher.hash(password), password)
    finally:
        hasher.shutdown()
