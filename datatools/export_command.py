"""``user-service export``: every user and its email guard into a JSON Lines file.

The file is written to ``FILE.partial`` (mode 0600: it holds password and token hashes) and
renamed to ``FILE`` once its end line is written; ``--resume`` continues a ``FILE.partial``
after its last complete line. See datatools.file_format for the lines.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from datatools.command_support import (
    EXIT_OK,
    EXIT_USAGE,
    PARTIAL_SUFFIX,
    STDIO,
    CommandFailed,
    listed,
    now,
    open_client,
)
from datatools.file_format import (
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
from datatools.progress import Progress
from datatools.table_export import ExportReport, estimated_user_count, export_users
from persistence.item_upgrades import item_schema_version
from persistence.schema import SCHEMA_VERSION, TableNames
from server.from_settings import table_names
from server.settings import Settings


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
        out.write(end_line(ExportEnd(report.users, now())) + "\n")
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
            stream.write(end_line(ExportEnd(resumed.users + report.users, now())) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
    else:
        report = ExportReport()
    os.replace(partial, final)
    _print_export_report(report, resumed, sys.stdout)
    print(f"wrote {final}")
    return EXIT_OK


def _new_header(tables: TableNames) -> ExportHeader:
    return ExportHeader(SCHEMA_VERSION, tables.users, tables.emails, now())


async def _export(
    settings: Settings,
    tables: TableNames,
    stream: TextIO,
    after_id: str | None,
    page_size: int | None,
    resumed: _Resumed,
) -> ExportReport:
    async with open_client(settings) as client:
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
        for user_id, problem in listed(problems):
            print(f"  user {user_id}: guard {problem.replace('_', ' ')}", file=out)
    newer = resumed.newer_schema + report.newer_schema
    if newer:
        print(
            f"{len(newer)} items of a schema newer than {SCHEMA_VERSION} were "
            "exported as stored (import them with that newer version):",
            file=out,
        )
        for user_id in listed(newer):
            print(f"  user {user_id}", file=out)
    if report.deleted_meanwhile:
        print(f"{report.deleted_meanwhile} users deleted during the export: not in it", file=out)
