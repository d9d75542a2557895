"""``user-service migrate``: every user item of an older schema upgraded in place (its sessions
moved to items of their own), while serving."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from datatools.command_support import EXIT_OK, listed, open_client
from datatools.progress import Progress
from datatools.table_export import estimated_user_count
from datatools.table_migration import MigrationReport, Vouching, migrate_table
from persistence.schema import SCHEMA_VERSION, TableNames
from server.from_settings import table_names
from server.settings import Settings


def migrate_command(
    settings: Settings,
    *,
    dry_run: bool,
    page_size: int | None,
    mark_verified_before: datetime | None = None,
) -> int:
    tables = table_names(settings)
    vouch = None
    if mark_verified_before is not None:
        vouch = Vouching(
            created_before=mark_verified_before,
            now=datetime.now(UTC),
            event_retention=timedelta(days=settings.events_retention_days),
            stream_shards=settings.events_stream_shards,
        )
    report = asyncio.run(_migrate(settings, tables, dry_run, page_size, vouch))
    upgraded = "would upgrade" if dry_run else "upgraded"
    marked = "would mark" if dry_run else "marked"
    print(
        f"{tables.users}: scanned {report.scanned}, {upgraded} {report.upgraded}, "
        f"already current {report.already_current}, changed concurrently and re-read "
        f"{report.changed_concurrently}, deleted meanwhile {report.deleted_meanwhile}, "
        f"of a newer schema {len(report.newer_schema)}"
        + (f"; {marked} {report.marked_verified} addresses verified" if vouch else "")
    )
    if dry_run:
        print("dry run: nothing was written")
    if report.newer_schema:
        print(f"left alone, written by a schema newer than {SCHEMA_VERSION}:")
        for user_id in listed(report.newer_schema):
            print(f"  user {user_id}")
    return EXIT_OK


async def _migrate(
    settings: Settings,
    tables: TableNames,
    dry_run: bool,
    page_size: int | None,
    vouch: Vouching | None,
) -> MigrationReport:
    async with open_client(settings) as client:
        total = await estimated_user_count(client, tables)
        progress = Progress("migrate", unit="items", total=total)
        report = await migrate_table(
            client,
            tables,
            dry_run=dry_run,
            page_size=page_size,
            on_item=progress.advance,
            session_idle_lifetime=timedelta(seconds=settings.session_idle_lifetime_seconds),
            vouch=vouch,
        )
    progress.finish()
    return report
