"""``user-service import``: the users of an export file into the tables, never over newer ones.

An import is idempotent: running it again writes nothing that is already there, so it resumes by
running again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from datatools.command_support import (
    EXIT_FAILURE,
    EXIT_OK,
    MAX_LISTED_PROBLEMS,
    STDIO,
    CommandFailed,
    open_client,
)
from datatools.file_format import (
    ExportEnd,
    MalformedLine,
    UserRecord,
    parse_header,
    parse_line,
)
from datatools.progress import Progress
from datatools.table_import import ImportResult, Outcome, import_user, marked_verified
from domain.errors import DomainError
from persistence.schema import SCHEMA_VERSION, TableNames
from server.from_settings import table_names
from server.settings import Settings


@dataclass
class _ImportTally:
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(text)


def import_command(
    settings: Settings, source: str, *, concurrency: int, mark_verified: bool = False
) -> int:
    """Import the users of ``source``; with ``mark_verified``, each user written has a verified
    address (the operator vouches for the file's addresses, as an admin does at RegisterUser)."""
    tables = table_names(settings)
    verified_at = datetime.now(UTC) if mark_verified else None
    if source == STDIO:
        tally = asyncio.run(_import(settings, tables, sys.stdin, concurrency, verified_at))
    else:
        try:
            stream = open(source, encoding="utf-8")
        except OSError as error:
            raise CommandFailed(f"cannot read {source}: {error.strerror}") from error
        with stream:
            tally = asyncio.run(_import(settings, tables, stream, concurrency, verified_at))
    counts = ", ".join(
        f"{count} {outcome.value}" for outcome, count in tally.outcomes.items() if count
    )
    print(f"imported into {tables.users} and {tables.emails}: {counts or 'no users'}")
    if tally.problem_count:
        print(f"problems ({tally.problem_count}):")
        for text in tally.problems:
            print(f"  {text}")
        if tally.problem_count > len(tally.problems):
            print(f"  ... and {tally.problem_count - len(tally.problems)} more")
        return EXIT_FAILURE
    return EXIT_OK


def _numbered(stream: TextIO) -> Iterator[tuple[int, str]]:
    for number, text in enumerate(stream, start=1):
        if text.strip():
            yield number, text


async def _import(
    settings: Settings,
    tables: TableNames,
    stream: TextIO,
    concurrency: int,
    verified_at: datetime | None,
) -> _ImportTally:
    tally = _ImportTally()
    lines = _numbered(stream)
    first = next(lines, None)
    if first is None:
        raise CommandFailed("the file is empty")
    try:
        header = parse_header(first[1])
    except MalformedLine as error:
        raise CommandFailed(f"line {first[0]}: {error}") from error
    if header.schema_version > SCHEMA_VERSION:
        raise CommandFailed(
            f"the file holds schema version {header.schema_version}; this user-service knows "
            f"up to {SCHEMA_VERSION}: import it with a newer one"
        )
    slots = asyncio.Semaphore(concurrency)
    pending: set[asyncio.Task[None]] = set()
    stopped: list[BaseException] = []
    progress = Progress("import", unit="users")
    end: ExportEnd | None = None
    users = 0

    async def one(client: Any, number: int, record: UserRecord) -> None:
        try:
            item = record.user if verified_at is None else marked_verified(record.user, verified_at)
            result = await import_user(
                client,
                tables,
                item,
                session_idle_lifetime=timedelta(seconds=settings.session_idle_lifetime_seconds),
            )
        except (ValueError, KeyError, TypeError) as error:  # newer schema, or not a user item
            tally.problem(f"line {number}: user {record.user_id}: refused: {error}")
        except DomainError as error:
            # DynamoDB refused or failed: the next users would fare no better (no table, no
            # permission, unavailable). Stop; running the import again continues.
            stopped.append(error)
            tally.problem(f"line {number}: user {record.user_id}: {error}")
        else:
            _count(tally, number, record, result)
        finally:
            slots.release()
            progress.advance()

    async with open_client(settings) as client:
        for number, text in lines:
            if stopped:
                break
            try:
                line = parse_line(text)
                if end is not None:
                    raise MalformedLine("a line after the end line")
            except MalformedLine as error:
                tally.problem(f"line {number}: malformed: {error}")
                continue
            if isinstance(line, ExportEnd):
                end = line
                continue
            users += 1
            await slots.acquire()
            if stopped:  # a write failed while this line waited for a slot
                slots.release()
                break
            task = asyncio.create_task(one(client, number, line))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    progress.finish()
    if stopped:
        tally.problem(
            "stopped at the first failed write: fix its cause and run the same import again "
            "(it skips the users already there)"
        )
    elif end is None:
        tally.problem("the file has no end line: its export did not finish (export --resume)")
    elif end.users != users:
        tally.problem(f"the end line counts {end.users} users, the file holds {users}")
    return tally


def _count(tally: _ImportTally, number: int, record: UserRecord, result: ImportResult) -> None:
    tally.outcomes[result.outcome] += 1
    if result.outcome.is_conflict:
        tally.problem(
            f"line {number}: user {record.user_id}: {result.outcome.value} "
            f"(user {result.email_owner})"
        )
