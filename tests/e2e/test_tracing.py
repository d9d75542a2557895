"""Tracing over a real channel, the spans kept by the SDK's in-memory exporter: a server span per
UserService call, parented on the caller's traceparent, its DynamoDB calls and the work after its
reply as its children, the status mapped as OpenTelemetry's rpc conventions say, the trace and
span ids in the access line, and no email, password or token in any span."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import SecretStr

from server import bootstrap
from server.interceptors.tracing import TracingInterceptor
from server.operations.logging_config import JsonFormatter, RequestIdFilter
from server.operations.tracing import Tracing, tracing_with
from tests.e2e.auth_helpers import PASSWORD, register, unique_email
from tests.e2e.conftest import ServeThroughProxy, serving
from tests.e2e.harness import Service, service_settings
from tests.fault_proxy import FaultProxy
from tests.legacy_system import old_system
from tests.smtp_server import CapturingSmtpServer

TIMEOUT = 10
SERVICE = "biome.user.v1.UserService"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Spans:
    """What the service exported so far, and ways to find the spans of one call."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()

    def tracing(self) -> Tracing:
        return tracing_with(SimpleSpanProcessor(self.exporter))

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def rpc(self, method: str) -> ReadableSpan:
        [span] = [s for s in self.all() if s.name == f"{SERVICE}/{method}"]
        return span

    def children_of(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [
            span
            for span in self.all()
            if span.parent is not None and span.parent.span_id == parent.context.span_id
        ]

    async def eventually(
        self, wanted: Callable[[ReadableSpan], bool], within: float = 10.0
    ) -> list[ReadableSpan]:
        """The spans ``wanted`` picks, once there is one (spans end after a reply or a mail)."""
        async with asyncio.timeout(within):
            while True:
                found = [span for span in self.all() if wanted(span)]
                if found:
                    return found
                await asyncio.sleep(0.02)


def hex_trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


def hex_span(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Spans:
    """Every service started in the test traces into memory (as the OTEL_* variables would
    into OTLP: tests/e2e/test_tracing_otlp.py)."""
    kept = Spans()
    monkeypatch.setattr(bootstrap, "tracing_from_environment", kept.tracing)
    return kept


@pytest_asyncio.fixture
async def traced(
    spans: Spans, moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> AsyncIterator[Service]:
    async with serving(service_settings(moto_endpoint, smtp_server), smtp_server) as running:
        yield running


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("user_service.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def every_attribute_value(span: ReadableSpan) -> list[str]:
    values = [str(value) for value in (span.attributes or {}).values()]
    for event in span.events:
        values.extend(str(value) for value in (event.attributes or {}).values())
    values.append(span.name)
    values.append(str(span.status.description))
    return values


async def test_off_unless_an_exporter_is_configured_nothing_is_installed(
    moto_endpoint: str, smtp_server: CapturingSmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    local = Spans().tracing()  # a span of someone else's current while DynamoDB is called

    async with contextlib.AsyncExitStack() as stack:
        built = await bootstrap.build_service(service_settings(moto_endpoint), stack)
        assert not [i for i in built.interceptors if isinstance(i, TracingInterceptor)]
        params: dict[str, Any] = {"TableName": built.tables.users}
        call_context: dict[str, Any] = {}
        with local.tracer.start_as_current_span("elsewhere"):
            await built.client.meta.events.emit(
                "before-parameter-build.dynamodb.GetItem",
                params=params,
                model=built.client.meta.service_model.operation_model("GetItem"),
                context=call_context,
            )
    assert params == {"TableName": built.tables.users}  # no ReturnConsumedCapacity asked
    assert call_context == {}  # no span kept


async def test_a_call_is_a_server_span_under_the_callers_trace_with_its_dynamodb_calls_as_children(
    traced: Service, spans: Spans
) -> None:
    email = unique_email("traced")
    await traced.stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="B"),
        timeout=TIMEOUT,
        metadata=(("traceparent", TRACEPARENT), ("tracestate", "vendor=opaque")),
    )

    rpc = spans.rpc("RegisterUser")
    assert rpc.kind == SpanKind.SERVER
    assert hex_trace(rpc) == TRACE_ID
    assert rpc.parent is not None and f"{rpc.parent.span_id:016x}" == PARENT_ID
    assert rpc.parent.is_remote
    assert rpc.context is not None and rpc.context.trace_state.get("vendor") == "opaque"
    assert dict(rpc.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "RegisterUser",
        "rpc.grpc.status_code": 0,
    }
    assert rpc.status.status_code == StatusCode.UNSET

    calls = spans.children_of(rpc)
    assert calls, "no DynamoDB span under the RPC's"
    for call in calls:
        assert call.kind == SpanKind.CLIENT
        assert hex_trace(call) == TRACE_ID
        attributes = dict(call.attributes or {})
        assert call.name == f"DynamoDB.{attributes['rpc.method']}"
        assert attributes["rpc.system"] == "aws-api"
        assert attributes["rpc.service"] == "DynamoDB"
        assert attributes["db.system"] == "dynamodb"
        assert attributes["aws.dynamodb.retries"] == 0
        assert attributes["http.response.status_code"] == 200
    write = [c for c in calls if c.name == "DynamoDB.TransactWriteItems"]
    assert write, [c.name for c in calls]
    tables = set(write[0].attributes["aws.dynamodb.table_names"])  # type: ignore[index, arg-type]
    assert {traced.tables.users, traced.tables.emails} <= tables
    for span in spans.all():
        for value in every_attribute_value(span):
            assert email not in value and PASSWORD not in value, (span.name, value)


async def test_a_read_reports_the_capacity_it_consumed(traced: Service, spans: Spans) -> None:
    account = await register(traced)
    spans.exporter.clear()

    await traced.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)

    [read] = spans.children_of(spans.rpc("GetUser"))
    assert read.name == "DynamoDB.GetItem"
    attributes = dict(read.attributes or {})
    assert attributes["aws.dynamodb.table_names"] == (traced.tables.users,)
    [capacity] = attributes["aws.dynamodb.consumed_capacity"]  # type: ignore[misc]
    assert json.loads(str(capacity))["TableName"] == traced.tables.users

    spans.exporter.clear()
    await traced.stub.BatchGetUsers(pb.BatchGetUsersRequest(ids=[account.id]), timeout=TIMEOUT)
    [batch] = spans.children_of(spans.rpc("BatchGetUsers"))
    assert batch.name == "DynamoDB.BatchGetItem"
    assert dict(batch.attributes or {})["aws.dynamodb.table_names"] == (traced.tables.users,)


async def test_a_call_without_a_valid_traceparent_starts_a_trace_of_its_own(
    traced: Service, spans: Spans
) -> None:
    for metadata in ((), (("traceparent", "00-not-a-trace-01"),)):
        spans.exporter.clear()
        await traced.stub.GetJwks(pb.GetJwksRequest(), timeout=TIMEOUT, metadata=metadata)
        rpc = spans.rpc("GetJwks")
        assert rpc.parent is None
        assert hex_trace(rpc) != TRACE_ID


async def test_a_callers_error_leaves_the_span_unset_with_its_code(
    traced: Service, spans: Spans
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await traced.stub.GetUser(
            pb.GetUserRequest(id="7a0e0c1e-5d2b-4c8e-9d5f-3a1b2c3d4e5f"), timeout=TIMEOUT
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    rpc = spans.rpc("GetUser")
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 5
    assert rpc.status.status_code == StatusCode.UNSET


async def test_an_unavailable_backend_makes_the_rpc_and_its_dynamodb_calls_errors(
    spans: Spans, fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    async with serve_through_proxy(dynamodb_max_attempts=2) as service:
        fault_proxy.throttle(1.0, operations=["GetItem"])
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.GetUser(
                pb.GetUserRequest(id="7a0e0c1e-5d2b-4c8e-9d5f-3a1b2c3d4e5f"), timeout=TIMEOUT
            )
        fault_proxy.pass_through()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE

    rpc = spans.rpc("GetUser")
    assert rpc.status.status_code == StatusCode.ERROR
    assert rpc.status.description == "UNAVAILABLE"
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 14
    [read] = spans.children_of(rpc)
    assert read.status.status_code == StatusCode.ERROR
    attributes = dict(read.attributes or {})
    assert attributes["error.type"] == "ProvisionedThroughputExceededException"
    assert attributes["aws.dynamodb.retries"] == 1
    assert [event.name for event in read.events] == ["attempt failed", "attempt failed"]


async def test_a_dynamodb_call_cut_short_by_the_rpcs_deadline_still_ends_its_span(
    spans: Spans, fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    """The deadline passes while aiobotocore awaits DynamoDB's answer: the call is cancelled,
    and botocore fires no event for it; its span ends all the same, with error.type."""
    async with serve_through_proxy() as service:
        fault_proxy.delay(3.0, operations=["GetItem"])  # the readiness probe's reads too
        fault_proxy.clear_record()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service.stub.GetUser(
                pb.GetUserRequest(id="7a0e0c1e-5d2b-4c8e-9d5f-3a1b2c3d4e5f"), timeout=0.5
            )
        fault_proxy.pass_through()
        assert fault_proxy.requests("GetItem")  # sent, its answer held back
        rpc = (await spans.eventually(lambda span: span.name == f"{SERVICE}/GetUser"))[0]
        [read] = await spans.eventually(
            lambda span: span.name == "DynamoDB.GetItem" and span.parent is not None
        )
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert read.parent is not None and rpc.context is not None
    assert read.parent.span_id == rpc.context.span_id
    assert read.status.status_code == StatusCode.ERROR
    assert read.attributes is not None and read.attributes["error.type"] == "CancelledError"


async def test_the_access_line_carries_the_spans_trace_and_span_ids(
    traced: Service, spans: Spans, access_log: io.StringIO
) -> None:
    await traced.stub.GetJwks(
        pb.GetJwksRequest(), timeout=TIMEOUT, metadata=(("traceparent", TRACEPARENT),)
    )

    rpc = spans.rpc("GetJwks")
    [line] = [json.loads(text) for text in access_log.getvalue().splitlines()]
    assert line["method"] == f"/{SERVICE}/GetJwks"
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, hex_span(rpc))


async def test_without_tracing_the_access_line_has_no_trace_ids(
    service: Service, access_log: io.StringIO
) -> None:
    await service.stub.GetJwks(
        pb.GetJwksRequest(), timeout=TIMEOUT, metadata=(("traceparent", TRACEPARENT),)
    )

    [line] = [json.loads(text) for text in access_log.getvalue().splitlines()]
    assert "trace_id" not in line and "span_id" not in line


async def test_the_mail_sent_after_the_reply_is_a_span_under_the_rpcs(
    traced: Service, spans: Spans
) -> None:
    account = await register(traced)
    spans.exporter.clear()

    await traced.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email),
        timeout=TIMEOUT,
        metadata=(("traceparent", TRACEPARENT),),
    )
    await traced.smtp.wait_for_message(to=account.email)

    rpc = spans.rpc("RequestPasswordReset")
    later = await spans.eventually(
        lambda span: span in spans.children_of(rpc) and span.kind == SpanKind.INTERNAL
    )
    assert all(hex_trace(span) == TRACE_ID for span in later)
    for span in spans.all():
        for value in every_attribute_value(span):
            assert account.email not in value, (span.name, value)


async def test_a_watch_is_one_span_for_the_whole_stream(traced: Service, spans: Spans) -> None:
    watch = traced.stub.WatchEvents(
        pb.WatchEventsRequest(), timeout=TIMEOUT, metadata=(("traceparent", TRACEPARENT),)
    )
    await asyncio.sleep(0.5)  # the stream is under way: no span has ended
    assert [span.name for span in spans.all()] == []

    watch.cancel()  # the caller goes away

    [rpc] = await spans.eventually(lambda span: span.name == f"{SERVICE}/WatchEvents")
    assert rpc.kind == SpanKind.SERVER
    assert hex_trace(rpc) == TRACE_ID
    assert rpc.attributes is not None and rpc.attributes["rpc.grpc.status_code"] == 1  # CANCELLED
    assert rpc.status.status_code == StatusCode.UNSET
    assert spans.children_of(rpc) == []  # its polls of the events table are no spans


async def test_health_checks_and_the_readiness_probe_are_not_traced(
    traced: Service, spans: Spans
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    await health_pb2_grpc.HealthStub(traced.channel).Check(  # type: ignore[attr-defined, unused-ignore]
        health_pb2.HealthCheckRequest(), timeout=TIMEOUT
    )
    # Nor the readiness probe's DynamoDB reads, made at the start and every few seconds.
    assert spans.all() == []


async def test_the_old_system_is_asked_with_the_traceparent_of_a_span_under_the_rpcs(
    spans: Spans, moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    key = os.urandom(32)
    async with old_system(key) as system:
        email = unique_email("old")
        system.add(email, PASSWORD, id="3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b")
        settings = service_settings(
            moto_endpoint,
            smtp_server,
            legacy_auth_url=system.url,
            legacy_auth_hmac_key=SecretStr(base64.b64encode(key).decode()),
            legacy_auth_timeout_seconds=2.0,
        )
        async with serving(settings, smtp_server) as service:
            await service.stub.Authenticate(
                pb.AuthenticateRequest(email=email, password=PASSWORD),
                timeout=TIMEOUT,
                metadata=(("traceparent", TRACEPARENT),),
            )

    rpc = spans.rpc("Authenticate")
    [post] = [span for span in spans.children_of(rpc) if span.name == "POST"]
    assert post.kind == SpanKind.CLIENT
    [sent] = system.traceparents
    assert sent is not None and sent.startswith(f"00-{TRACE_ID}-{hex_span(post)}-")
    for span in spans.all():
        for value in every_attribute_value(span):
            assert email not in value and PASSWORD not in value, (span.name, value)
