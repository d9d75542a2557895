"""``migrate`` against moto_server: old items upgraded in place, newer ones left, no update lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from datatools.table_migration import MigrationReport, migrate_table
from domain.use_cases.accounts import update_profile
from domain.user import User
from persistence.item_upgrades import item_schema_version
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0
from tests.data_tool_helpers import (
    as_schema_3,
    get_user_item,
    put_raw,
    put_version_1_user,
    scan_all,
)
from tests.fakes import FixedClock

Item = dict[str, Any]


class HookedClient:
    """The real client, running ``hook`` once just before the first call of ``method``."""

    def __init__(self, client: Any, method: str, hook: Callable[[], Awaitable[None]]) -> None:
        self._client, self._method, self._hook = client, method, hook
        self.hooked = False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name != self._method or self.hooked:
            return call

        async def hooked(**kwargs: Any) -> Any:
            self.hooked = True
            await self._hook()
            return await call(**kwargs)

        return hooked


async def users_as_version_1(
    client: Any, tables: TableNames, count: int, *, with_revision: bool
) -> list[str]:
    """Ids of ``count`` users stored as schema version 1 wrote them."""
    kind = "revised" if with_revision else "unrevised"
    return [
        await put_version_1_user(
            client, tables, f"{kind}{n}@example.com", with_revision=with_revision
        )
        for n in range(count)
    ]


async def schema_versions(client: Any, tables: TableNames) -> list[int]:
    return [item_schema_version(item) for item in await scan_all(client, tables.users)]


async def rename(client: Any, tables: TableNames, user_id: str, name: str, version: int) -> User:
    return await update_profile(
        DynamoUnitOfWork(client, tables),
        FixedClock(T0 + timedelta(hours=1)),
        user_id=user_id,
        first_name=name,
        last_name=None,
        expected_version=version,
    )


async def test_migrate_upgrades_every_old_item_and_keeps_what_callers_see(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    with_revision = await users_as_version_1(
        dynamodb_client, dynamodb_tables, 3, with_revision=True
    )
    without = await users_as_version_1(dynamodb_client, dynamodb_tables, 2, with_revision=False)
    before = {
        item["Id"]["S"]: item for item in await scan_all(dynamodb_client, dynamodb_tables.users)
    }

    report = await migrate_table(dynamodb_client, dynamodb_tables, page_size=2)

    assert (report.scanned, report.upgraded, report.already_current) == (5, 5, 0)
    assert report.changed_concurrently == 0 and report.newer_schema == []
    for user_id in with_revision + without:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        old = before[user_id]
        assert item is not None
        assert item["SchemaVersion"] == {"N": "2"} and item["EventSeq"] == {"N": "0"}
        # The revision stays as it was (for items from before revisions: their Version).
        assert item["Revision"] == old.get("Revision", old["Version"])
        assert {k: v for k, v in item.items() if k not in {"SchemaVersion", "EventSeq"}} == {
            **{k: v for k, v in old.items() if k != "SchemaVersion"},
            "Revision": item["Revision"],
        }


async def test_migrate_again_finds_everything_current_and_writes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await users_as_version_1(dynamodb_client, dynamodb_tables, 3, with_revision=True)
    await migrate_table(dynamodb_client, dynamodb_tables)
    before = await scan_all(dynamodb_client, dynamodb_tables.users)

    report = await migrate_table(dynamodb_client, dynamodb_tables)

    assert (report.scanned, report.upgraded, report.already_current) == (3, 0, 3)
    assert await scan_all(dynamodb_client, dynamodb_tables.users) == before


async def test_a_dry_run_counts_what_it_would_upgrade_and_writes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await users_as_version_1(dynamodb_client, dynamodb_tables, 3, with_revision=False)
    before = await scan_all(dynamodb_client, dynamodb_tables.users)

    report = await migrate_table(dynamodb_client, dynamodb_tables, dry_run=True)

    assert (report.scanned, report.upgraded, report.dry_run) == (3, 3, True)
    assert await scan_all(dynamodb_client, dynamodb_tables.users) == before


async def test_an_item_of_a_newer_schema_is_left_alone_and_reported(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    _, future_id = await users_as_version_1(dynamodb_client, dynamodb_tables, 2, with_revision=True)
    current = await get_user_item(dynamodb_client, dynamodb_tables, future_id)
    assert current is not None
    stored_future = as_schema_3(current)
    await put_raw(dynamodb_client, dynamodb_tables.users, stored_future)

    report = await migrate_table(dynamodb_client, dynamodb_tables)

    assert report.newer_schema == [future_id]
    assert (report.upgraded, report.already_current) == (1, 0)
    assert await get_user_item(dynamodb_client, dynamodb_tables, future_id) == stored_future


async def test_a_service_write_landing_between_scan_and_upgrade_wins_and_the_item_is_re_read(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    (user_id,) = await users_as_version_1(dynamodb_client, dynamodb_tables, 1, with_revision=False)
    stored = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert stored is not None
    version = int(stored["Version"]["N"])

    async def service_write() -> None:
        await rename(dynamodb_client, dynamodb_tables, user_id, "Between", version)

    racing = HookedClient(dynamodb_client, "put_item", service_write)
    report = await migrate_table(racing, dynamodb_tables)

    assert racing.hooked
    assert (report.upgraded, report.changed_concurrently, report.already_current) == (0, 1, 1)
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "Between"}
    assert item["SchemaVersion"] == {"N": "2"}
    assert item["Revision"] == {"N": str(version + 1)}


async def test_a_service_write_read_before_the_upgrade_lands_after_it_without_a_conflict(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    (user_id,) = await users_as_version_1(dynamodb_client, dynamodb_tables, 1, with_revision=False)
    stored = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert stored is not None
    version = int(stored["Version"]["N"])
    reports = []

    async def migrate_in_between() -> None:
        reports.append(await migrate_table(dynamodb_client, dynamodb_tables))

    # The use case reads the version-1 item; the migration upgrades it; then the write lands.
    service_client = HookedClient(dynamodb_client, "transact_write_items", migrate_in_between)
    renamed = await rename(service_client, dynamodb_tables, user_id, "After", version)

    assert service_client.hooked and reports[0].upgraded == 1
    assert renamed.version == version + 1
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "After"}
    assert item["SchemaVersion"] == {"N": "2"}
    assert item["Revision"] == {"N": str(version + 1)}


async def test_migrate_running_alongside_service_writes_loses_no_update(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = await users_as_version_1(dynamodb_client, dynamodb_tables, 6, with_revision=False)
    renames = 4

    async def keep_renaming(user_id: str) -> None:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        assert item is not None
        version = int(item["Version"]["N"])
        for n in range(renames):
            renamed = await rename(dynamodb_client, dynamodb_tables, user_id, f"N{n}", version)
            version = renamed.version

    reports: list[MigrationReport] = []

    async def migrate(page_size: int) -> None:
        reports.append(await migrate_table(dynamodb_client, dynamodb_tables, page_size=page_size))

    # Two migrations (as from two operators) and the renames, all at once.
    await asyncio.gather(migrate(2), migrate(3), *(keep_renaming(user_id) for user_id in users))

    for user_id in users:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        assert item is not None
        assert item["FirstName"] == {"S": f"N{renames - 1}"}
    assert set(await schema_versions(dynamodb_client, dynamodb_tables)) == {2}
    for report in reports:
        assert report.scanned == len(users)
