"""Argon2id password hashing on a bounded thread pool, so hashing never blocks the event loop,
behind a bounded queue, so overload is refused rather than waited out. Hashes brought over
from the old system (server/crypto/legacy_hashes.py) are verified on the same pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

from domain.values import Password
from server.crypto import legacy_hashes
from server.crypto.legacy_hashes import HashFormat
from server.refusals import PasswordHashQueueFull

_Result = TypeVar("_Result")

# How much nicer than the rest of the process the hashing threads run. argon2 is pure CPU; when
# the cores are busy, the scheduler then gives the event loop (every other RPC) the CPU first,
# and hashing the rest. 10 leaves hashing about a tenth of a core the loop wants.
HASH_THREAD_NICENESS = 10


class Argon2PasswordHasher:
    """domain.ports.PasswordHasher backed by argon2-cffi; at most ``workers`` hashes run at once.

    At most ``max_waiting`` more wait for a thread (None: no bound); beyond that, ``hash`` and
    ``verify`` raise PasswordHashQueueFull at once, before the call has changed anything, and
    the caller is told to retry (RESOURCE_EXHAUSTED). A hash whose caller went away still holds
    its place until its thread has finished with it.
    """

    def __init__(
        self,
        *,
        time_cost: int,
        memory_kib: int,
        parallelism: int,
        workers: int,
        max_waiting: int | None = None,
        accepted_formats: Collection[HashFormat] = tuple(HashFormat),
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=yield_cpu_to_other_threads
        )
        self._max_waiting = max_waiting
        self._capacity = None if max_waiting is None else workers + max_waiting
        self._lock = threading.Lock()  # the count is released from the hashing threads
        self._in_pool = 0
        # Verified against when an email is unknown, so that answer takes as long as a real one.
        self.dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._today = extract_parameters(self.dummy_hash)
        # The service's own hashes always match (settings refuse a list without argon2id).
        self._accepted = frozenset(accepted_formats) | {HashFormat.ARGON2ID}

    @property
    def in_pool(self) -> int:
        """Hashes running or waiting for a thread."""
        return self._in_pool

    async def hash(self, password: Password) -> str:
        return await self._run(self._hasher.hash, password.value)

    async def verify(self, password_hash: str, password: Password) -> bool:
        """Whether ``password`` matches ``password_hash``, in whichever format it is.

        A hash in a format not accepted, malformed, or above the ceilings never matches: it is
        refused without its own work, and the dummy hash is checked instead, so the answer
        takes as long as a wrong password does for an account with a usable hash.
        """
        return await self._run(self._verify, password_hash, password.value, password.as_typed)

    def _run(self, work: Callable[..., _Result], *args: str) -> asyncio.Future[_Result]:
        with self._lock:
            if self._capacity is not None and self._in_pool >= self._capacity:
                assert self._max_waiting is not None
                raise PasswordHashQueueFull(self._max_waiting)
            self._in_pool += 1
        try:
            future: Future[_Result] = self._pool.submit(work, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._in_pool -= 1

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's, or is not argon2id
        (every hash brought over from the old system): a sign-in that verified it rewrites it.

        A hash made with stronger parameters is kept: lowering the settings never weakens it.
        """
        try:
            used = extract_parameters(password_hash)
        except InvalidHashError:
            return True
        today = self._hasher
        return (
            used.type is not Type.ID
            or used.time_cost < today.time_cost
            or used.memory_cost < today.memory_cost
            or used.parallelism < today.parallelism
            or used.hash_len < today.hash_len
            or used.salt_len < today.salt_len
        )

    def shutdown(self) -> None:
        """Waits for running hashes and frees the worker threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _verify(self, password_hash: str, clear_text: str, as_typed: str) -> bool:
        found = legacy_hashes.identify(password_hash, today=self._today)
        if found is HashFormat.ARGON2ID:
            return self._verify_argon2id(password_hash, clear_text)
        if found is None or found not in self._accepted or not _usable(password_hash):
            self._verify_argon2id(self.dummy_hash, clear_text)
            return False
        # Made by the old system from the password as typed; an argon2 hash of weaker
        # parameters may also be this service's own, made from the normalised text.
        if legacy_hashes.verify(password_hash, as_typed):
            return True
        return as_typed != clear_text and legacy_hashes.verify(password_hash, clear_text)

    def _verify_argon2id(self, password_hash: str, clear_text: str) -> bool:
        try:
            return self._hasher.verify(password_hash, clear_text)
        except (VerificationError, InvalidHashError):
            return False


def _usable(password_hash: str) -> bool:
    try:
        legacy_hashes.check_importable(password_hash)
    except legacy_hashes.UnusableHash:
        return False
    return True


def yield_cpu_to_other_threads() -> None:
    """Lower the calling thread's CPU priority by HASH_THREAD_NICENESS.

    On Linux a thread's niceness is its own (setpriority with the thread's id); elsewhere, or if
    the system refuses, the thread keeps the process's priority.
    """
    if not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + HASH_THREAD_NICENESS))
