"""DynamoDB calls seen through botocore's events: throttles and retries logged at WARNING and
reported with every call's outcome, never with a request's parameters; botocore still retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, Tracer

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from persistence.schema import TableNames
from server.operations.tracing import tracing_with
from tests.conftest import free_port
from tests.fault_proxy import FaultProxy, Outcome

THROTTLED = "ProvisionedThroughputExceededException"
OBSERVER_LOGGER = "persistence.call_observer"
SECRET_EMAIL = "hidden.person@example.com"


@dataclass
class RecordingObserver:
    """Keeps what it is told, in order."""

    finished: list[tuple[str, str]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    retried: list[tuple[str, int]] = field(default_factory=list)
    throttled: list[str] = field(default_factory=list)

    def dynamodb_call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        self.finished.append((operation, outcome))
        self.seconds.append(seconds)

    def dynamodb_call_retried(self, operation: str, retries: int) -> None:
        self.retried.append((operation, retries))

    def dynamodb_throttled(self, operation: str) -> None:
        self.throttled.append(operation)


@asynccontextmanager
async def observed_client(
    endpoint: str, observer: RecordingObserver, max_attempts: int, tracer: Tracer | None = None
) -> AsyncIterator[Any]:
    options = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=max_attempts,
        connect_timeout=1.0,
    )
    async with open_dynamodb_client(options, observer=observer, tracer=tracer) as client:
        yield client


async def put_user(client: Any, tables: TableNames) -> None:
    await client.put_item(
        TableName=tables.users,
        Item={"Id": {"S": "user-1"}, "Email": {"S": SECRET_EMAIL}},
        ConditionExpression="attribute_not_exists(Id)",
    )


def observer_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == OBSERVER_LOGGER]


async def test_throttled_attempts_are_logged_and_counted_and_botocore_still_retries(
    proxy: FaultProxy, dynamodb_tables: TableNames, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OBSERVER_LOGGER)
    observer = RecordingObserver()
    proxy.throttle(1.0, times=2, operations=["PutItem"])

    async with observed_client(proxy.url, observer, max_attempts=3) as client:
        await put_user(client, dynamodb_tables)

    outcomes = [request.outcome for request in proxy.requests("PutItem")]
    assert outcomes == [Outcome.THROTTLED, Outcome.THROTTLED, Outcome.FORWARDED]
    assert observer.throttled == ["PutItem", "PutItem"]
    assert observer.retried == [("PutItem", 2)]
    assert observer.finished == [("PutItem", "ok")]
    records = observer_records(caplog)
    assert [record.levelno for record in records] == [logging.WARNING] * 3
    assert [record.getMessage() for record in records] == [
        f"DynamoDB PutItem throttled (attempt 1): {THROTTLED}",
        f"DynamoDB PutItem throttled (attempt 2): {THROTTLED}",
        "DynamoDB PutItem needed 2 retries: ok",
    ]
    first = records[0]
    assert (first.operation, first.attempt, first.error_code) == ("PutItem", 1, THROTTLED)  # type: ignore[attr-defined]
    assert (records[2].operation, records[2].retries) == ("PutItem", 2)  # type: ignore[attr-defined]


async def test_throttling_that_outlasts_the_attempts_ends_the_call_with_its_error_code(
    proxy: FaultProxy, dynamodb_tables: TableNames, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OBSERVER_LOGGER)
    observer = RecordingObserver()
    proxy.throttle(1.0, operations=["PutItem"])

    async with observed_client(proxy.url, observer, max_attempts=2) as client:
        with pytest.raises(ClientError):
            await put_user(client, dynamodb_tables)

    assert observer.throttled == ["PutItem", "PutItem"]
    assert observer.retried == [("PutItem", 1)]
    assert observer.finished == [("PutItem", THROTTLED)]
    assert observer_records(caplog)[-1].getMessage() == (
        f"DynamoDB PutItem needed 1 retries: {THROTTLED}"
    )


async def test_a_call_without_retries_logs_nothing_and_reports_its_outcome_and_latency(
    moto_endpoint: str, dynamodb_tables: TableNames, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=OBSERVER_LOGGER)
    observer = RecordingObserver()

    async with observed_client(moto_endpoint, observer, max_attempts=3) as client:
        await put_user(client, dynamodb_tables)
        with pytest.raises(ClientError):
            await put_user(client, dynamodb_tables)  # the condition fails: not retried

    assert observer.finished == [
        ("PutItem", "ok"),
        ("PutItem", "ConditionalCheckFailedException"),
    ]
    assert all(0 < seconds < 30 for seconds in observer.seconds)
    assert observer.retried == [] and observer.throttled == []
    assert observer_records(caplog) == []


async def test_a_call_that_gets_no_answer_reports_the_exception_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=OBSERVER_LOGGER)
    observer = RecordingObserver()
    nowhere = f"http://127.0.0.1:{free_port()}"

    async with observed_client(nowhere, observer, max_attempts=2) as client:
        with pytest.raises(EndpointConnectionError):
            await client.get_item(TableName="Users", Key={"Id": {"S": "x"}})

    assert observer.finished == [("GetItem", "EndpointConnectionError")]
    assert observer.retried == [("GetItem", 1)]
    assert observer.throttled == []
    [record] = observer_records(caplog)
    assert record.getMessage() == "DynamoDB GetItem needed 1 retries: EndpointConnectionError"


async def test_no_observer_line_holds_a_request_parameter(
    proxy: FaultProxy, dynamodb_tables: TableNames, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=OBSERVER_LOGGER)
    proxy.throttle(1.0, times=1, operations=["PutItem"])

    async with observed_client(proxy.url, RecordingObserver(), max_attempts=3) as client:
        await put_user(client, dynamodb_tables)

    records = observer_records(caplog)
    assert len(records) == 2
    text = "\n".join(f"{record.getMessage()} {vars(record)}" for record in records)
    assert SECRET_EMAIL not in text and "user-1" not in text and dynamodb_tables.users not in text


async def test_a_call_cancelled_while_it_awaits_its_answer_ends_its_span_and_is_counted(
    proxy: FaultProxy, dynamodb_tables: TableNames
) -> None:
    """The RPC's deadline passes (here: asyncio.timeout) or its caller goes away while aiobotocore
    awaits DynamoDB's answer: botocore fires no event, yet the call's span ends (exported, with
    error.type) and the call is counted, its outcome the exception's class."""
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter))
    observer = RecordingObserver()
    proxy.delay(5.0, operations=["GetItem"], times=1)
    key = {"Id": {"S": "user-1"}}

    async with observed_client(proxy.url, observer, 1, tracing.tracer) as client:
        with tracing.tracer.start_as_current_span("rpc") as rpc:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.5):
                    await client.get_item(TableName=dynamodb_tables.users, Key=key)
            assert [r.operation for r in proxy.requests()] == ["GetItem"]  # it was under way
            await client.get_item(TableName=dynamodb_tables.users, Key=key)  # the next one: ok

    cancelled, answered = calls = spans_named(exporter, "DynamoDB.GetItem")
    rpc_id = rpc.get_span_context().span_id
    assert all(span.parent and span.parent.span_id == rpc_id for span in calls)
    assert cancelled.attributes is not None
    assert cancelled.attributes["error.type"] == "CancelledError"
    assert cancelled.attributes["aws.dynamodb.retries"] == 0
    assert cancelled.status.status_code == StatusCode.ERROR
    assert answered.attributes is not None and "error.type" not in answered.attributes
    assert answered.status.status_code == StatusCode.UNSET
    assert observer.finished == [("GetItem", "CancelledError"), ("GetItem", "ok")]
    assert 0.4 < observer.seconds[0] < 5.0
    assert observer.retried == []


async def test_a_cancelled_call_that_was_not_traced_is_counted_all_the_same(
    proxy: FaultProxy, dynamodb_tables: TableNames
) -> None:
    observer = RecordingObserver()
    proxy.delay(5.0, operations=["PutItem"], times=1)

    async with observed_client(proxy.url, observer, max_attempts=1) as client:
        call = asyncio.create_task(put_user(client, dynamodb_tables))
        for _ in range(500):  # until the proxy holds the request (5 s at most)
            if proxy.requests("PutItem"):
                break
            await asyncio.sleep(0.01)
        assert proxy.requests("PutItem")
        call.cancel()  # the caller went away
        with pytest.raises(asyncio.CancelledError):
            await call

    assert observer.finished == [("PutItem", "CancelledError")]


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]
