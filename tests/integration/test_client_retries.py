"""The DynamoDB client's retry budget, timeouts and deadline, seen from a fault-injecting proxy.

The settings' attempts, connect and read timeouts reach botocore's client; throttling that
outlasts the attempts becomes StorageUnavailable (UNAVAILABLE with RetryInfo at the edge), a
backend that does not answer in time too, and the caller's deadline stops botocore's retries.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from domain.errors import DeadlineExceeded, StorageUnavailable
from persistence.deadline import deadline_in
from persistence.dynamodb_client import open_dynamodb_client
from persistence.errors import translated
from persistence.readiness import check_ready
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from server.from_settings import dynamodb_options
from server.settings import Settings
from tests.fault_proxy import FaultProxy, Outcome
from tests.integration.proxy_client import client_through


async def read_one_item(client: Any, tables: TableNames) -> None:
    with translated("GetItem"):
        await client.get_item(TableName=tables.users, Key={"Id": {"S": "no-such-user"}})


@pytest.fixture
async def tables(dynamodb_client: Any, table_names: TableNames) -> TableNames:
    await ensure_tables(dynamodb_client, table_names)
    return table_names


async def test_the_settings_reach_the_botocore_client() -> None:
    settings = Settings(
        dynamodb_endpoint="http://127.0.0.1:8000",
        dynamodb_connect_timeout=1.5,
        dynamodb_read_timeout=4.0,
        dynamodb_max_attempts=7,
    )
    async with open_dynamodb_client(dynamodb_options(settings, "http://127.0.0.1:8000")) as client:
        config = client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (1.5, 4.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 7}


@pytest.mark.parametrize("attempts", [1, 3])
async def test_throttling_that_outlasts_the_attempts_is_storage_unavailable(
    proxy: FaultProxy, tables: TableNames, attempts: int
) -> None:
    proxy.throttle(1.0)
    async with client_through(proxy, max_attempts=attempts) as client:
        with pytest.raises(StorageUnavailable, match="ProvisionedThroughputExceeded"):
            await read_one_item(client, tables)

    sent = proxy.requests("GetItem")
    assert len(sent) == attempts
    assert {request.outcome for request in sent} == {Outcome.THROTTLED}


async def test_throttling_the_retries_outlast_is_invisible_to_the_caller(
    proxy: FaultProxy, tables: TableNames
) -> None:
    proxy.throttle(1.0, times=2)
    async with client_through(proxy, max_attempts=3) as client:
        await read_one_item(client, tables)

    outcomes = [request.outcome for request in proxy.requests()]
    assert outcomes[:3] == [Outcome.THROTTLED, Outcome.THROTTLED, Outcome.FORWARDED]


async def test_a_backend_slower_than_the_read_timeout_is_storage_unavailable_after_the_attempts(
    proxy: FaultProxy, tables: TableNames
) -> None:
    proxy.delay(3.0, after_forwarding=True)
    async with client_through(proxy, read_timeout=0.3, max_attempts=2) as client:
        with pytest.raises(StorageUnavailable, match="ReadTimeout"):
            await read_one_item(client, tables)

    # Each attempt gave up after 0.3 s; waiting 3 s for an answer would have succeeded.
    assert len(proxy.requests("GetItem")) == 2


async def test_the_callers_deadline_stops_botocores_retries(
    proxy: FaultProxy, tables: TableNames
) -> None:
    proxy.throttle(1.0)
    async with client_through(proxy, max_attempts=10) as client:
        with deadline_in(0.2), pytest.raises(DeadlineExceeded):
            deadline = time.monotonic() + 0.2
            await read_one_item(client, tables)

    sent = proxy.requests("GetItem")
    # botocore's standard backoff waits up to 1 s, 2 s, ... between attempts: the deadline
    # passes during a wait, and the attempt after it is never sent.
    assert 1 <= len(sent) < 10
    assert all(request.received_at < deadline for request in sent)


async def test_a_throttled_backend_is_still_ready_since_every_replica_meets_the_same_limit(
    proxy: FaultProxy, tables: TableNames
) -> None:
    proxy.throttle(1.0)
    async with client_through(proxy, max_attempts=1) as client:
        await check_ready(client, tables)

    assert {request.outcome for request in proxy.requests("GetItem")} == {Outcome.THROTTLED}
