"""Writes the checked rows of the old system's export as users, each with its guard in one write.

Each user goes through ``table_import.import_user``, as ``user-service import`` writes its users:
one TransactWriteItems holding the user item and its email guard, conditional on the id being
new, so a rerun (after a crash, or of the same file) writes nothing twice and finds every user it
wrote already there. Like ``import``, it records no events. The password hash is stored exactly
as the source holds it; the first sign-in verifies it in its legacy format and rehashes it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datatools.legacy_rows import LegacyUser, Refusal
from datatools.progress import Progress
from datatools.table_import import Outcome, import_user
from domain.errors import DomainError
from domain.user import User, UserStatus
from persistence.schema import TableNames
from persistence.user_mapper import user_to_item

Item = dict[str, Any]


class Written(enum.Enum):
    """What writing one checked row did."""

    IMPORTED = "imported"
    ALREADY_IMPORTED = "already imported (skipped)"
    EMAIL_TAKEN = "email taken in the target"
    NOT_WRITTEN = "not written (storage failed)"


@dataclass
class WriteTally:
    """The counts of a run, the rows refused while writing, and the failure that stopped it."""

    counts: dict[Written, int] = field(default_factory=lambda: dict.fromkeys(Written, 0))
    refusals: list[Refusal] = field(default_factory=list)
    stopped_by: str | None = None


def legacy_user_item(user: LegacyUser, now: datetime) -> Item:
    """The user item ``user`` is stored as: version and revision 1, as RegisterUser writes it."""
    verified_at = now if user.email_verified else None
    account = User(
        id=user.user_id,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        password_hash=user.password_hash,
        status=UserStatus.DISABLED if user.disabled else UserStatus.ACTIVE,
        created_at=user.created_at or now,
        updated_at=now,
        locked_until=user.locked_until,
        email_verified=user.email_verified,
        email_verified_at=verified_at,
    )
    return user_to_item(account, version=1, revision=1, event_seq=0)


async def write_legacy_users(
    client: Any,
    tables: TableNames,
    users: Iterable[LegacyUser],
    *,
    now: datetime,
    concurrency: int,
    progress: Progress,
) -> WriteTally:
    """Writes ``users``, ``concurrency`` at a time. A row refused by the target (its email
    belongs to another user) never stops the others; a storage failure stops the run, since the
    next writes would fare no better, and running it again continues."""
    tally = WriteTally()
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()

    async def one(user: LegacyUser) -> None:
        try:
            result = await import_user(client, tables, legacy_user_item(user, now))
        except DomainError as error:
            tally.stopped_by = tally.stopped_by or f"row {user.number}: {error}"
            tally.counts[Written.NOT_WRITTEN] += 1
        else:
            written = _written(result.outcome)
            tally.counts[written] += 1
            if written is Written.EMAIL_TAKEN:
                tally.refusals.append(
                    Refusal(user.number, "email", f"belongs to user {result.email_owner} there")
                )
        finally:
            slots.release()
            progress.advance()

    for user in users:
        await slots.acquire()
        if tally.stopped_by is not None:
            slots.release()
            break
        task = asyncio.create_task(one(user))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    progress.finish()
    return tally


def _written(outcome: Outcome) -> Written:
    if outcome.wrote:
        return Written.IMPORTED
    if outcome.is_conflict:
        return Written.EMAIL_TAKEN
    # The same id is there: written by an earlier run (and maybe signed in and rehashed since).
    return Written.ALREADY_IMPORTED
