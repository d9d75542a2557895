"""Seeding users straight into the tables with BatchWriteItem, as the service would store them.

Registering 100,000 users through the API would spend most of the run in argon2, so the items
are written directly: the user item by the service's own mapper (``persistence.user_mapper``)
and the email-guard item in the layout of ``persistence.user_repository``. Every seeded user
shares one argon2id hash of ``SEED_PASSWORD``, made once with the service's default hasher
settings, so seeded users can sign in (and need no re-hash when they do).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain.user import User, UserStatus
from domain.values import Email, Password, PersonName, UserId
from persistence.user_mapper import user_to_item
from server.crypto.passwords import Argon2PasswordHasher
from server.settings import ENV_PREFIX, Settings
from tools.bench.environment import Tables

SEED_PASSWORD = "seeded-bench-passphrase-2718"
BATCH_ITEMS = 25  # BatchWriteItem's limit
MAX_UNPROCESSED_ATTEMPTS = 12


async def seeded_password_hash(settings: Mapping[str, str]) -> str:
    """One argon2id hash of SEED_PASSWORD, made with the service's hasher settings.

    ``settings``: the USER_SERVICE_* the service is given; the defaults stand for the rest.
    """

    def setting(name: str) -> int:
        value = settings.get(f"{ENV_PREFIX}{name.upper()}")
        return int(value) if value is not None else int(Settings.model_fields[name].default)

    hasher = Argon2PasswordHasher(
        time_cost=setting("argon2_time_cost"),
        memory_kib=setting("argon2_memory_kib"),
        parallelism=setting("argon2_parallelism"),
        workers=1,
    )
    try:
        return await hasher.hash(Password.parse(SEED_PASSWORD))
    finally:
        hasher.shutdown()


@dataclass
class Seeded:
    """The users seeded so far: their ids and addresses, by seeding order."""

    ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    seconds: float = 0.0
    batch_requests: int = 0
    unprocessed_retries: int = 0

    def __len__(self) -> int:
        return len(self.ids)


def seeded_user(number: int, password_hash: str, now: datetime) -> User:
    return User(
        id=UserId.new(),
        email=Email(f"seed-{number:06d}@bench.example.com"),
        first_name=PersonName("Seeded"),
        last_name=PersonName(f"User {number}"),
        password_hash=password_hash,
        status=UserStatus.ACTIVE,
        created_at=now,
        updated_at=now,
        version=1,
    )


def _write_requests(
    tables: Tables, first: int, count: int, password_hash: str, seeded: Seeded
) -> Iterator[tuple[str, dict[str, Any]]]:
    now = datetime.now(UTC)
    for number in range(first, first + count):
        user = seeded_user(number, password_hash, now)
        seeded.ids.append(user.id.value)
        seeded.emails.append(user.email.value)
        yield (
            tables.users,
            {"PutRequest": {"Item": user_to_item(user, version=1, revision=1, event_seq=0)}},
        )
        guard = {"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}}
        yield tables.emails, {"PutRequest": {"Item": guard}}


def _batches(requests: Iterator[tuple[str, dict[str, Any]]]) -> Iterator[dict[str, list[Any]]]:
    batch: dict[str, list[Any]] = {}
    size = 0
    for table, request in requests:
        batch.setdefault(table, []).append(request)
        size += 1
        if size == BATCH_ITEMS:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


async def seed_users(
    client: Any,
    tables: Tables,
    seeded: Seeded,
    *,
    count: int,
    password_hash: str,
    in_flight: int,
    within: float,
) -> None:
    """Adds ``count`` users to ``seeded`` and the tables; TimeoutError after ``within`` seconds."""
    if count <= 0:
        return
    started = time.monotonic()
    first = len(seeded)
    batches = _batches(_write_requests(tables, first, count, password_hash, seeded))
    report = _Progress(count, first, seeded, started)

    async def writer() -> None:
        for batch in batches:  # the writers share one iterator: each batch is written once
            await _write_batch(client, batch, seeded)
            report.maybe_print()

    await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(in_flight))), within)
    seeded.seconds += time.monotonic() - started


async def _write_batch(client: Any, batch: dict[str, list[Any]], seeded: Seeded) -> None:
    pending = batch
    for attempt in range(MAX_UNPROCESSED_ATTEMPTS):
        seeded.batch_requests += 1
        response = await client.batch_write_item(RequestItems=pending)
        pending = response.get("UnprocessedItems") or {}
        if not pending:
            return
        seeded.unprocessed_retries += 1
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
    raise RuntimeError(f"BatchWriteItem left items unprocessed {MAX_UNPROCESSED_ATTEMPTS} times")


class _Progress:
    """A line on stderr about every 10% of the users of one seeding."""

    def __init__(self, count: int, first: int, seeded: Seeded, started: float) -> None:
        self._count, self._first, self._seeded, self._started = count, first, seeded, started
        self._next = 0.1

    def maybe_print(self) -> None:
        # Users are listed as their items are generated, slightly ahead of what has landed.
        done = min(self._count, len(self._seeded) - self._first)
        if done / self._count >= self._next:
            elapsed = time.monotonic() - self._started
            print(
                f"  seeding: {done}/{self._count} users, {done / max(elapsed, 1e-9):.0f}/s",
                file=sys.stderr,
            )
            self._next += 0.1
