"""migrate and import finish, every item correct, while DynamoDB refuses writes as conflicting
(injected by the fault proxy: moto never does it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from datatools import conflict_retry
from datatools.table_import import Outcome, import_user
from datatools.table_migration import migrate_table
from domain.errors import StorageUnavailable
from persistence.schema import TableNames
from tests.builders import T0
from tests.data_tool_helpers import (
    drop_tables,
    fresh_tables,
    put_version_1_user,
    scan_all,
    sign_up,
)
from tests.fakes import FixedClock
from tests.fault_proxy import FaultProxy
from tests.fault_proxy import Outcome as ProxyOutcome
from tests.integration.proxy_client import client_through

# Fewer refusals than attempts: whatever order the writes come in, no item can run out.
REFUSALS = conflict_retry.ATTEMPTS - 1


@pytest_asyncio.fixture
async def target(dynamodb_client: Any, dynamodb_tables: TableNames) -> AsyncIterator[TableNames]:
    """Empty tables to import into."""
    names = await fresh_tables(dynamodb_client, dynamodb_tables)
    yield names
    await drop_tables(dynamodb_client, names)


@pytest.fixture
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conflict_retry, "BASE_SECONDS", 0.001)
    monkeypatch.setattr(conflict_retry, "MAX_PAUSE_SECONDS", 0.01)


def refused(proxy: FaultProxy, operation: str) -> int:
    return sum(r.outcome is ProxyOutcome.CONFLICTED for r in proxy.requests(operation))


async def test_migrate_finishes_with_every_item_upgraded_while_puts_meet_transactions(
    dynamodb_client: Any, dynamodb_tables: TableNames, proxy: FaultProxy
) -> None:
    ids = [
        await put_version_1_user(
            dynamodb_client, dynamodb_tables, f"m{n}@example.com", with_revision=n % 2 == 0
        )
        for n in range(8)
    ]
    before = {
        item["Id"]["S"]: item for item in await scan_all(dynamodb_client, dynamodb_tables.users)
    }
    proxy.conflict(0.5, operations=["PutItem"], times=REFUSALS, seed=5)

    async with client_through(proxy, max_attempts=3) as client:
        report = await migrate_table(client, dynamodb_tables)

    assert refused(proxy, "PutItem") > 0  # botocore did not retry them: the command did
    assert (report.scanned, report.upgraded, report.changed_concurrently) == (8, 8, 0)
    after = {
        item["Id"]["S"]: item for item in await scan_all(dynamodb_client, dynamodb_tables.users)
    }
    assert sorted(after) == sorted(ids)
    for user_id, item in after.items():
        old = before[user_id]
        assert item["SchemaVersion"] == {"N": "5"}
        assert item["Revision"] == old.get("Revision", old["Version"])
        assert item["Email"] == old["Email"] and item["PasswordHash"] == old["PasswordHash"]


async def test_migrate_meeting_conflicts_on_every_attempt_stops_with_a_clear_error(
    dynamodb_client: Any, dynamodb_tables: TableNames, proxy: FaultProxy, quick_pauses: None
) -> None:
    await put_version_1_user(dynamodb_client, dynamodb_tables, "x@example.com", with_revision=True)
    proxy.conflict(operations=["PutItem"])

    async with client_through(proxy) as client:
        with pytest.raises(StorageUnavailable, match="kept meeting concurrent writes"):
            await migrate_table(client, dynamodb_tables)

    assert refused(proxy, "PutItem") == conflict_retry.ATTEMPTS  # bounded
    [item] = await scan_all(dynamodb_client, dynamodb_tables.users)
    assert "SchemaVersion" not in item or item["SchemaVersion"] != {"N": "5"}


async def test_import_finishes_with_every_user_and_guard_while_transactions_conflict(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames, proxy: FaultProxy
) -> None:
    clock = FixedClock(T0)
    for n in range(6):
        await sign_up(dynamodb_client, dynamodb_tables, clock, f"i{n}@example.com")
    users = await scan_all(dynamodb_client, dynamodb_tables.users)
    proxy.conflict(0.5, operations=["TransactWriteItems"], times=REFUSALS, seed=9)

    async with client_through(proxy) as client:
        outcomes = [(await import_user(client, target, user)).outcome for user in users]

    assert refused(proxy, "TransactWriteItems") > 0
    assert outcomes == [Outcome.CREATED] * 6
    assert await scan_all(dynamodb_client, target.users) == users
    assert await scan_all(dynamodb_client, target.emails) == await scan_all(
        dynamodb_client, dynamodb_tables.emails
    )
