"""The data commands: ``export`` users to a JSON Lines file, ``import`` one, ``migrate`` in place.

An export is written to ``FILE.partial`` (mode 0600: it holds password and token hashes) and
renamed to ``FILE`` once its end line is written; ``--resume`` continues a ``FILE.partial``
after its last complete line. An import is idempotent: running it again writes nothing that is
already there, so it resumes by running again. See persistence.export_format for the lines.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from domain.errors import DomainError
from persistence.dynamodb_client import open_dynamodb_client
from persistence.export_format import (
    ExportEnd,
    ExportHeader,
    MalformedLine,
    UserRecord,
    end_line,
    header_line,
    parse_header,
    parse_line,
    user_line,
)
from persistence.item_upgrades import item_schema_version
from persistence.schema import SCHEMA_VERSION, TableNames
from persistence.table_export import ExportReport, estimated_user_count, export_users
from persistence.table_import import ImportResult, Outcome, import_user
from persistence.table_migration import MigrationReport, migrate_table
from server.progress import Progress
from server.settings import Settings
from server.storage import dynamodb_options, table_names

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PARTIAL_SUFFIX = ".partial"
# Problems listed one by one at the end of a run; beyond that, only counted.
MAX_LISTED_PROBLEMS = 100
STDIO = "-"


class CommandFailed(Exception):
    """A data command cannot go on; the message says why and what to do."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[Any]:
    async with open_dynamodb_client(
        dynamodb_options(settings, settings.dynamodb_endpoint)
    ) as client:
        yield client


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- export --------------------------------------------------------------------------------


@dataclass
class _Resumed:
    """What an interrupted export file already holds."""

    users: int = 0
    last_id: str | None = None
    finished: bool = False
    guard_problems: list[tuple[str, str]] = field(default_factory=list)
    newer_schema: list[str] = field(default_factory=list)


def export_command(settings: Settings, target: str, *, resume: bool, page_size: int | None) -> int:
    tables = table_names(settings)
    if target == STDIO:
        if resume:
            raise CommandFailed("--resume needs a file, not standard output", EXIT_USAGE)
        out = sys.stdout
        out.write(header_line(_new_header(tables)) + "\n")
        report = asyncio.run(_export(settings, tables, out, None, page_size, _Resumed()))
        out.write(end_line(ExportEnd(report.users, _now())) + "\n")
        out.flush()
        _print_export_report(report, _Resumed(), sys.stderr)
        return EXIT_OK
    final, partial = Path(target), Path(target + PARTIAL_SUFFIX)
    if resume and not partial.exists():
        if final.exists():
            print(f"{final}: already complete; nothing to resume", file=sys.stderr)
            return EXIT_OK
        raise CommandFailed(f"nothing to resume: {partial} does not exist")
    if not resume and partial.exists():
        raise CommandFailed(
            f"{partial} holds an interrupted export: continue it with --resume, or delete it"
        )
    if resume:
        resumed = _reopen(partial, tables)
        os.chmod(partial, 0o600)  # whoever made the file, it is as sensitive as the table
    else:
        resumed = _Resumed()
        # 0600 from the first byte: the file is as sensitive as the table.
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(header_line(_new_header(tables)) + "\n")
    if not resumed.finished:
        with partial.open("a", encoding="utf-8") as stream:
            report = asyncio.run(
                _export(settings, tables, stream, resumed.last_id, page_size, resumed)
            )
            stream.write(end_line(ExportEnd(resumed.users + report.users, _now())) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
    else:
        report = ExportReport()
    os.replace(partial, final)
    _print_export_report(report, resumed, sys.stdout)
    print(f"wrote {final}")
    return EXIT_OK


def _new_header(tables: TableNames) -> ExportHeader:
    return ExportHeader(SCHEMA_VERSION, tables.users, tables.emails, _now())


async def _export(
    settings: Settings,
    tables: TableNames,
    stream: TextIO,
    after_id: str | None,
    page_size: int | None,
    resumed: _Resumed,
) -> ExportReport:
    async with _client(settings) as client:
        total = await estimated_user_count(client, tables)
        progress = Progress("export", unit="users", total=total, initial=resumed.users)

        def write(record: UserRecord) -> None:
            # Flushed line by line: after a crash the file ends at (or within) the last user
            # written, where --resume continues.
            stream.write(user_line(record) + "\n")
            stream.flush()
            progress.advance()

        report = await export_users(client, tables, write, after_id=after_id, page_size=page_size)
    stream.flush()
    progress.finish()
    return report


def _reopen(partial: Path, tables: TableNames) -> _Resumed:
    """Reads an interrupted export: drops a partial last line, checks the header, finds the end."""
    with partial.open("rb+") as raw:
        data = raw.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            raw.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        raise CommandFailed(f"{partial} has no complete header line; delete it and export again")
    try:
        header = parse_header(lines[0])
    except MalformedLine as error:
        raise CommandFailed(f"{partial}: {error}") from error
    if (header.users_table, header.emails_table) != (tables.users, tables.emails):
        raise CommandFailed(
            f"{partial} is an export of {header.users_table} and {header.emails_table}, "
            f"not of the configured {tables.users} and {tables.emails}"
        )
    if header.schema_version != SCHEMA_VERSION:
        raise CommandFailed(
            f"{partial} was started by schema version {header.schema_version}; this is "
            f"version {SCHEMA_VERSION}: delete it and export again"
        )
    resumed = _Resumed()
    for number, text in enumerate(lines[1:], start=2):
        try:
            line = parse_line(text)
        except MalformedLine as error:
            raise CommandFailed(f"{partial}, line {number}: {error}") from error
        if isinstance(line, ExportEnd):
            resumed.finished = True
            break
        resumed.users += 1
        resumed.last_id = line.user_id
        if line.guard_problem is not None:
            resumed.guard_problems.append((line.user_id, line.guard_problem))
        if item_schema_version(line.user) > SCHEMA_VERSION:
            resumed.newer_schema.append(line.user_id)
    return resumed


def _print_export_report(report: ExportReport, resumed: _Resumed, out: TextIO) -> None:
    users = resumed.users + report.users
    earlier = f" ({resumed.users} of them before resuming)" if resumed.users else ""
    print(f"exported {users} users{earlier}", file=out)
    problems = resumed.guard_problems + report.guard_problems
    if problems:
        print(
            f"{len(problems)} users had a wrong email guard in the source; the file carries "
            "the guard each should have:",
            file=out,
        )
        for user_id, problem in _listed(problems):
            print(f"  user {user_id}: guard {problem.replace('_', ' ')}", file=out)
    newer = resumed.newer_schema + report.newer_schema
    if newer:
        print(
            f"{len(newer)} items of a schema newer than {SCHEMA_VERSION} were "
            "exported as stored (import them with that newer version):",
            file=out,
        )
        for user_id in _listed(newer):
            print(f"  user {user_id}", file=out)
    if report.deleted_meanwhile:
        print(f"{report.deleted_meanwhile} users deleted during the export: not in it", file=out)


# --- import --------------------------------------------------------------------------------


@dataclass
class _ImportTally:
    outcomes: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(text)


def import_command(settings: Settings, source: str, *, concurrency: int) -> int:
    tables = table_names(settings)
    if source == STDIO:
        tally = asyncio.run(_import(settings, tables, sys.stdin, concurrency))
    else:
        try:
            stream = open(source, encoding="utf-8")
        except OSError as error:
            raise CommandFailed(f"cannot read {source}: {error.strerror}") from error
        with stream:
            tally = asyncio.run(_import(settings, tables, stream, concurrency))
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
    settings: Settings, tables: TableNames, stream: TextIO, concurrency: int
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
            result = await import_user(client, tables, record.user)
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

    async with _client(settings) as client:
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


# --- migrate -------------------------------------------------------------------------------


def migrate_command(settings: Settings, *, dry_run: bool, page_size: int | None) -> int:
    tables = table_names(settings)
    report = asyncio.run(_migrate(settings, tables, dry_run, page_size))
    upgraded = "would upgrade" if dry_run else "upgraded"
    print(
        f"{tables.users}: scanned {report.scanned}, {upgraded} {report.upgraded}, "
        f"already current {report.already_current}, changed concurrently and re-read "
        f"{report.changed_concurrently}, deleted meanwhile {report.deleted_meanwhile}, "
        f"of a newer schema {len(report.newer_schema)}"
    )
    if dry_run:
        print("dry run: nothing was written")
    if report.newer_schema:
        print(f"left alone, written by a schema newer than {SCHEMA_VERSION}:")
        for user_id in _listed(report.newer_schema):
            print(f"  user {user_id}")
    return EXIT_OK


async def _migrate(
    settings: Settings, tables: TableNames, dry_run: bool, page_size: int | None
) -> MigrationReport:
    async with _client(settings) as client:
        total = await estimated_user_count(client, tables)
        progress = Progress("migrate", unit="items", total=total)
        report = await migrate_table(
            client, tables, dry_run=dry_run, page_size=page_size, on_item=progress.advance
        )
    progress.finish()
    return report


def _listed(items: list[Any]) -> list[Any]:
    return items[:MAX_LISTED_PROBLEMS]


def run_data_command(settings: Settings, command: str, args: Any) -> int:
    """Runs ``export``, ``import`` or ``migrate`` as parsed by the command line; the exit code."""
    try:
        if command == "export":
            return export_command(settings, args.file, resume=args.resume, page_size=args.page_size)
        if command == "import":
            return import_command(settings, args.file, concurrency=args.concurrency)
        return migrate_command(settings, dry_run=args.dry_run, page_size=args.page_size)
    except CommandFailed as error:
        _fail(command, str(error))
        return error.code
    except KeyboardInterrupt:
        _fail(command, "interrupted" + _how_to_continue(command, args))
        return EXIT_FAILURE
    except Exception as error:
        _fail(command, f"{str(error) or type(error).__name__}{_how_to_continue(command, args)}")
        return EXIT_FAILURE


def _how_to_continue(command: str, args: Any) -> str:
    if command == "export" and args.file != STDIO:
        return f"; {args.file}{PARTIAL_SUFFIX} is kept: continue with export --resume {args.file}"
    if command in {"import", "migrate"}:
        return f"; running {command} again continues safely"
    return ""


def _fail(command: str, message: str) -> None:
    print(f"user-service {command}: {message}", file=sys.stderr)
