"""``user-service import-legacy PATH``: the old system's users, checked, then written.

Every row is checked first (datatools.legacy_rows); ``--dry-run`` stops there and prints the
report. A real run then writes the rows that passed (datatools.legacy_import), skipping those
already there, and prints the same report with what the writes did.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from datatools.command_support import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    open_client,
)
from datatools.legacy_import import WriteTally, write_legacy_users
from datatools.legacy_rows import ColumnMap, FileUnusable, Validation, read_rows, validate
from datatools.progress import Progress
from server.from_settings import table_names
from server.settings import Settings

# Off a terminal, a progress line this often.
PLAIN_PROGRESS_SECONDS = 5.0


def import_legacy_command(
    settings: Settings,
    source: str,
    *,
    mapping: list[str],
    dry_run: bool,
    concurrency: int,
    out: TextIO | None = None,
) -> int:
    """Checks every row of ``source``; writes them unless ``dry_run``. The exit code."""
    out = out or sys.stdout
    try:
        columns = ColumnMap.with_overrides(mapping)
    except FileUnusable as error:
        raise CommandFailed(str(error), EXIT_USAGE) from error
    try:
        checked = validate(read_rows(Path(source)), columns)
    except FileUnusable as error:
        raise CommandFailed(f"{source}: {error}; nothing imported") from error
    tally = None
    if not dry_run:
        tally = asyncio.run(_write(settings, checked, concurrency))
    print_report(out, source, checked, tally)
    if checked.refusals or (tally is not None and (tally.refusals or tally.stopped_by)):
        return EXIT_FAILURE
    return EXIT_OK


async def _write(settings: Settings, checked: Validation, concurrency: int) -> WriteTally:
    progress = Progress(
        "import-legacy",
        unit="users",
        total=len(checked.users),
        plain_seconds=PLAIN_PROGRESS_SECONDS,
    )
    async with open_client(settings) as client:
        return await write_legacy_users(
            client,
            table_names(settings),
            checked.users,
            now=datetime.now(UTC),
            concurrency=concurrency,
            progress=progress,
        )


def print_report(out: TextIO, source: str, checked: Validation, tally: WriteTally | None) -> None:
    """The table of counts, then every refused row, then every id replaced (old -> new)."""
    lines: list[tuple[str, int]] = [
        ("rows read", checked.rows),
        ("rows ok", len(checked.users)),
        ("rows refused", len(checked.refusals)),
    ]
    if tally is not None:
        lines += [(written.value, count) for written, count in tally.counts.items()]
    title = "dry run, nothing written" if tally is None else "written"
    print(f"import-legacy {source} ({title}):", file=out)
    width = max(len(label) for label, _ in lines)
    digits = max(len(str(count)) for _, count in lines)
    for label, count in lines:
        print(f"  {label.ljust(width)}  {str(count).rjust(digits)}", file=out)
    refusals = sorted(checked.refusals + (tally.refusals if tally else []), key=lambda r: r.number)
    if refusals:
        print(f"refused rows ({len(refusals)}):", file=out)
        for refusal in refusals:
            print(f"  {refusal}", file=out)
    replaced = [user for user in checked.users if user.id_replaced]
    if replaced:
        print(f"ids that are not UUIDs, and the user ids given ({len(replaced)}):", file=out)
        for user in replaced:
            print(f"  row {user.number}: {user.source_id} -> {user.user_id.value}", file=out)
    if tally is not None and tally.stopped_by is not None:
        print(
            f"stopped at a failed write ({tally.stopped_by}): fix its cause and run the same "
            "import-legacy again (it skips the users already there)",
            file=out,
        )
    elif tally is None and not checked.refusals:
        print("every row can be imported: run again without --dry-run", file=out)
