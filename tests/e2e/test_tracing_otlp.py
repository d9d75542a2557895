"""The wire format shown: ``user-service serve`` as a real process, configured for tracing by
nothing but OTEL_* variables, exports over OTLP/gRPC to a real receiver on loopback
(tests.otlp_receiver) the span of a call, under the caller's trace id, and its DynamoDB calls as
that span's children; what is still batched at SIGTERM is sent before the process ends."""

from __future__ import annotations

import asyncio
import signal
import time
from uuid import uuid4

import grpc
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc_health.v1 import health_pb2

from tests.conftest import free_port
from tests.e2e.test_cli import cli_environment, health_status, start_cli
from tests.otlp_receiver import ReceivedSpan, otlp_receiver

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
SERVICE = "biome.user.v1.UserService"
INTERNAL_KIND, SERVER_KIND, CLIENT_KIND = 1, 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind


def register_spans(spans: list[ReceivedSpan]) -> tuple[ReceivedSpan, list[ReceivedSpan]] | None:
    """The RegisterUser span and its children, once the children's writes are there."""
    rpcs = [span for span in spans if span.name == f"{SERVICE}/RegisterUser"]
    if not rpcs:
        return None
    children = [span for span in spans if span.parent_span_id == rpcs[0].span_id]
    if not any(span.name == "DynamoDB.TransactWriteItems" for span in children):
        return None
    return rpcs[0], children


async def test_the_rpc_and_its_dynamodb_calls_reach_an_otlp_receiver_under_the_callers_trace(
    moto_endpoint: str,
) -> None:
    port = free_port()
    suffix = uuid4().hex[:8]
    async with otlp_receiver() as receiver:
        environment = cli_environment(
            AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
            USER_SERVICE_TABLE_NAME=f"Users-{suffix}",
            USER_SERVICE_EMAIL_TABLE_NAME=f"UserEmails-{suffix}",
            USER_SERVICE_EVENTS_TABLE_NAME=f"UserEvents-{suffix}",
            USER_SERVICE_SESSIONS_TABLE_NAME=f"UserSessions-{suffix}",
            USER_SERVICE_PORT=str(port),
            USER_SERVICE_LOG_LEVEL="info",
            USER_SERVICE_LOG_FORMAT="json",
            # Nothing else turns tracing on, names the service or tunes the batches.
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_SERVICE_NAME="users-under-test",
            OTEL_RESOURCE_ATTRIBUTES="deployment.environment=e2e",
            OTEL_BSP_SCHEDULE_DELAY="60000",
        )
        process = await start_cli("serve", environment=environment)
        try:
            deadline = time.monotonic() + 30
            while await health_status(port) != health_pb2.HealthCheckResponse.SERVING:
                assert process.returncode is None, "the server exited early"
                assert time.monotonic() < deadline, "not SERVING within 30 s"
                await asyncio.sleep(0.1)

            email = f"otlp-{suffix}@example.com"
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await user_service_pb2_grpc.UserServiceStub(channel).RegisterUser(
                    pb.RegisterUserRequest(
                        email=email,
                        password="Correct-Horse-Battery-9",
                        first_name="Ada",
                        last_name="Byron",
                    ),
                    timeout=10,
                    metadata=(("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"),),
                )
            await asyncio.sleep(0.5)
            # Batched, not sent: the batch delay is a minute away.
            assert register_spans(receiver.spans) is None

            process.send_signal(signal.SIGTERM)
            output, errors = await asyncio.wait_for(process.communicate(), timeout=20)
            # Sent at the stop, after the drain, before the process ended.
            found = register_spans(receiver.spans)
            assert found is not None, [span.name for span in receiver.spans]
            rpc, children = found
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, output.decode() + errors.decode()

    assert rpc.service_name == "users-under-test"
    assert rpc.kind == SERVER_KIND
    assert rpc.trace_id == TRACE_ID
    assert rpc.parent_span_id == CALLER_SPAN_ID
    assert rpc.attributes["rpc.system"] == "grpc"
    assert rpc.attributes["rpc.method"] == "RegisterUser"
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    calls = [span for span in children if span.name.startswith("DynamoDB.")]
    assert {span.kind for span in calls} == {CLIENT_KIND}
    assert {span.trace_id for span in children} == {TRACE_ID}
    # The verification mail, sent after the reply, is under the call's span too.
    assert [span.name for span in children if span.kind == INTERNAL_KIND] == [
        "send a verification mail"
    ]
    write = next(span for span in children if span.name == "DynamoDB.TransactWriteItems")
    assert write.attributes["rpc.service"] == "DynamoDB"
    assert f"Users-{suffix}" in write.attributes["aws.dynamodb.table_names"]
    resource = receiver.resources[receiver.spans.index(rpc)]
    assert resource["deployment.environment"] == "e2e"
    for span in receiver.spans:
        assert email not in repr(span), span.name
    # The access line names the span the receiver got.
    access = [line for line in output.decode().splitlines() if "RegisterUser" in line]
    assert any(f'"trace_id": "{TRACE_ID}"' in line for line in access), access
    assert any(f'"span_id": "{rpc.span_id}"' in line for line in access), access
