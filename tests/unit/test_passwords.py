"""Argon2PasswordHasher: argon2id at the configured cost, computed off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from argon2 import extract_parameters

from domain.values import Password
from server.passwords import Argon2PasswordHasher


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
