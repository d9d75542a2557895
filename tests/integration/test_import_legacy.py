"""import-legacy's writes against moto: what a dry run promises is what a run writes, a rerun
writes nothing, a run stopped midway is finished by the next, a taken email refuses one row."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest_asyncio
from botocore.exceptions import EndpointConnectionError

from datatools.legacy_import import WriteTally, Written, write_legacy_users
from datatools.legacy_rows import ColumnMap, Validation, read_rows, validate
from datatools.progress import Progress
from persistence.schema import TableNames
from tests.data_tool_helpers import drop_tables, fresh_tables, scan_all, sign_up
from tests.fakes import FixedClock
from tools.legacy_import_bench import write_rows

NOW = datetime.now(UTC)
ROWS = 60


@pytest_asyncio.fixture
async def tables(dynamodb_client: Any) -> AsyncIterator[TableNames]:
    names = await fresh_tables(dynamodb_client, TableNames())
    yield names
    await drop_tables(dynamodb_client, names)


def generated(tmp_path: Path, rows: int = ROWS) -> Validation:
    path = tmp_path / "AspNetUsers.csv"
    write_rows(path, rows, iterations=1000)
    return validate(read_rows(path), ColumnMap.with_overrides([]), now=NOW)


async def run(client: Any, tables: TableNames, checked: Validation) -> WriteTally:
    return await write_legacy_users(
        client,
        tables,
        checked.users,
        now=NOW,
        concurrency=8,
        progress=Progress("test", stream=io.StringIO()),
    )


class CrashingAfter:
    """The client, until ``writes`` transactions have gone through; then the endpoint is gone."""

    def __init__(self, client: Any, writes: int) -> None:
        self._client, self._left = client, writes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def transact_write_items(self, **request: Any) -> Any:
        if self._left <= 0:
            raise EndpointConnectionError(endpoint_url="http://gone")
        self._left -= 1
        return await self._client.transact_write_items(**request)


async def test_a_run_writes_every_user_the_dry_run_passed_with_its_hash_exactly_as_given(
    dynamodb_client: Any, tables: TableNames, tmp_path: Path
) -> None:
    checked = generated(tmp_path)

    tally = await run(dynamodb_client, tables, checked)

    assert tally.counts[Written.IMPORTED] == len(checked.users) == ROWS
    assert tally.refusals == [] and tally.stopped_by is None
    items = {item["Id"]["S"]: item for item in await scan_all(dynamodb_client, tables.users)}
    guards = await scan_all(dynamodb_client, tables.emails)
    assert len(items) == len(guards) == ROWS
    assert {g["Email"]["S"]: g["UserId"]["S"] for g in guards} == {
        u.email.normalized: u.user_id.value for u in checked.users
    }
    for user in checked.users:
        item = items[user.user_id.value]
        assert item["PasswordHash"]["S"] == user.password_hash
        assert item.get("EmailVerified", {}).get("BOOL", False) is user.email_verified
        assert ("LockedUntil" in item) is (user.locked_until is not None)
        assert item["Status"]["S"] == "ACTIVE"
        assert item["CreatedAt"]["S"] == user.created_at.isoformat(timespec="microseconds")  # type: ignore[union-attr]
    assert await scan_all(dynamodb_client, tables.events) == [], "silent, as import is"


async def test_a_rerun_writes_nothing_and_counts_every_row_already_imported(
    dynamodb_client: Any, tables: TableNames, tmp_path: Path
) -> None:
    checked = generated(tmp_path)
    await run(dynamodb_client, tables, checked)
    before = await scan_all(dynamodb_client, tables.users)

    again = await run(dynamodb_client, tables, checked)

    assert again.counts[Written.ALREADY_IMPORTED] == ROWS
    assert again.counts[Written.IMPORTED] == 0
    assert await scan_all(dynamodb_client, tables.users) == before


async def test_a_run_stopped_midway_is_finished_by_the_next_without_duplicates(
    dynamodb_client: Any, tables: TableNames, tmp_path: Path
) -> None:
    checked = generated(tmp_path)

    crashed = await run(CrashingAfter(dynamodb_client, 25), tables, checked)

    assert crashed.stopped_by is not None
    assert crashed.counts[Written.IMPORTED] == 25
    assert len(await scan_all(dynamodb_client, tables.users)) == 25
    assert len(await scan_all(dynamodb_client, tables.emails)) == 25, "no user without its guard"

    resumed = await run(dynamodb_client, tables, checked)

    assert resumed.stopped_by is None
    assert (resumed.counts[Written.IMPORTED], resumed.counts[Written.ALREADY_IMPORTED]) == (
        ROWS - 25,
        25,
    )
    assert len(await scan_all(dynamodb_client, tables.users)) == ROWS
    assert len(await scan_all(dynamodb_client, tables.emails)) == ROWS


async def test_an_email_another_user_holds_refuses_that_row_and_writes_the_others(
    dynamodb_client: Any, tables: TableNames, tmp_path: Path
) -> None:
    checked = generated(tmp_path, rows=5)
    taken = checked.users[2]
    owner = await sign_up(
        dynamodb_client, tables, FixedClock(NOW - timedelta(days=1)), taken.email.value.upper()
    )

    tally = await run(dynamodb_client, tables, checked)

    assert tally.counts[Written.IMPORTED] == 4
    assert [str(r) for r in tally.refusals] == [
        f"row {taken.number}: email: belongs to user {owner.user_id} there"
    ]
    ids = {item["Id"]["S"] for item in await scan_all(dynamodb_client, tables.users)}
    assert taken.user_id.value not in ids and owner.user_id in ids
