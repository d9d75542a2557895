"""One access-log line per RPC, and a request id that the caller gets back on success and error,
over a real channel; the lines written during a call (DynamoDB throttles) carry the same id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.crypto.api_keys import api_key_sha256, new_api_key
from server.operations.logging_config import JsonFormatter, RequestIdFilter
from server.settings import ApiKey
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, field_violations, rpc_error, service_settings
from tests.fault_proxy import FaultProxy
from tests.smtp_server import CapturingSmtpServer

if TYPE_CHECKING:
    from tests.e2e.conftest import ServeThroughProxy

TIMEOUT = 10
SERVICE = "/biome.user.v1.UserService"
GENERATED = re.compile(r"[0-9a-f]{32}")
LOGGERS = ("user_service.access", "persistence.call_observer", "server.status")


class JsonLog:
    """The JSON lines the service writes while a test runs (the real formatter and filter)."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def text(self) -> str:
        return self.stream.getvalue()

    def access(self, request_id: str) -> dict[str, Any]:
        """The one access line of the call with ``request_id``."""
        [line] = [
            entry
            for entry in self.entries()
            if entry["logger"] == "user_service.access" and entry.get("request_id") == request_id
        ]
        return line

    async def access_eventually(self, request_id: str, within: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            try:
                return self.access(request_id)
            except ValueError:
                assert time.monotonic() < deadline, f"no access line for {request_id}"
                await asyncio.sleep(0.05)


@pytest.fixture
def log() -> Iterator[JsonLog]:
    captured = JsonLog()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    root.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield captured
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def request_id_in(metadata: Any) -> str | None:
    values = [value for key, value in metadata or () if key == "x-request-id"]
    assert len(values) <= 1, values
    return values[0] if values else None


async def ok_trailers(call: Any) -> str | None:
    await call
    return request_id_in(await call.trailing_metadata())


async def error_trailers(call: Awaitable[object]) -> tuple[grpc.aio.AioRpcError, str | None]:
    error = await rpc_error(call)
    return error, request_id_in(error.trailing_metadata())


def with_request_id(value: str) -> tuple[tuple[str, str], ...]:
    return (("x-request-id", value),)


async def registered(service: Service) -> pb.User:
    return await service.stub.RegisterUser(
        pb.RegisterUserRequest(
            email=f"log-{uuid4().hex[:12]}@example.com",
            password="correct horse battery",
            first_name="Ada",
            last_name="Lovelace",
        ),
        timeout=TIMEOUT,
    )


async def test_the_callers_request_id_comes_back_and_names_the_calls_access_line(
    service: Service, log: JsonLog
) -> None:
    user = await registered(service)

    call = service.stub.GetUser(
        pb.GetUserRequest(id=user.id), metadata=with_request_id("trace-42"), timeout=TIMEOUT
    )
    echoed = await ok_trailers(call)

    assert echoed == "trace-42"
    line = log.access("trace-42")
    assert line["level"] == "INFO"
    assert line["method"] == f"{SERVICE}/GetUser" and line["code"] == "OK"
    assert isinstance(line["duration_ms"], float) and 0 <= line["duration_ms"] < TIMEOUT * 1000
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    assert line["message"].startswith(f"{SERVICE}/GetUser OK ")


async def test_error_replies_carry_the_request_id_beside_their_details(
    service: Service, log: JsonLog
) -> None:
    not_found, not_found_id = await error_trailers(
        service.stub.GetUser(
            pb.GetUserRequest(id=str(uuid4())), metadata=with_request_id("nf-1"), timeout=TIMEOUT
        )
    )
    invalid, invalid_id = await error_trailers(
        service.stub.GetUser(
            pb.GetUserRequest(id="not-a-uuid"), metadata=with_request_id("inv-1"), timeout=TIMEOUT
        )
    )

    assert (not_found.code(), not_found_id) == (grpc.StatusCode.NOT_FOUND, "nf-1")
    assert (invalid.code(), invalid_id) == (grpc.StatusCode.INVALID_ARGUMENT, "inv-1")
    assert "id" in field_violations(invalid)  # the google.rpc.Status details survived
    assert log.access("nf-1")["code"] == "NOT_FOUND"
    assert log.access("inv-1")["code"] == "INVALID_ARGUMENT"


async def test_a_call_without_a_request_id_gets_a_fresh_one_each(
    service: Service, log: JsonLog
) -> None:
    first = await ok_trailers(service.stub.GetJwks(pb.GetJwksRequest(), timeout=TIMEOUT))
    _, second = await error_trailers(
        service.stub.GetUser(pb.GetUserRequest(id=str(uuid4())), timeout=TIMEOUT)
    )

    assert first is not None and GENERATED.fullmatch(first)
    assert second is not None and GENERATED.fullmatch(second) and second != first
    assert log.access(first)["method"] == f"{SERVICE}/GetJwks"
    assert log.access(second)["code"] == "NOT_FOUND"


# gRPC itself refuses a call whose metadata passes 8 KiB (RESOURCE_EXHAUSTED, before any handler);
# below that, the service must not take a value this large into every line of the call.
@pytest.mark.parametrize("hostile", ["x" * 6_000, "forged request_id=admin level=ERROR", "y" * 129])
async def test_a_huge_or_forged_request_id_is_replaced_never_logged(
    service: Service, log: JsonLog, hostile: str
) -> None:
    call = service.stub.GetJwks(
        pb.GetJwksRequest(), metadata=with_request_id(hostile), timeout=TIMEOUT
    )
    replaced = await ok_trailers(call)

    assert replaced is not None and GENERATED.fullmatch(replaced)
    assert log.access(replaced)["code"] == "OK"
    assert hostile not in log.text()
    assert hostile[:60] not in log.text()


async def test_health_checks_are_logged_at_debug_so_they_do_not_flood_the_log(
    service: Service, log: JsonLog
) -> None:
    call = health_pb2_grpc.HealthStub(service.channel).Check(  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        health_pb2.HealthCheckRequest(), metadata=with_request_id("probe-1"), timeout=TIMEOUT
    )
    assert await ok_trailers(call) == "probe-1"

    line = log.access("probe-1")
    assert (line["method"], line["level"]) == ("/grpc.health.v1.Health/Check", "DEBUG")


async def test_a_stream_is_logged_when_it_ends_with_its_request_id_in_the_trailers(
    service: Service, log: JsonLog
) -> None:
    # Any: the stub's ServerReflectionInfo is a broken placeholder ("Incomplete" from binascii).
    reflection: Any = reflection_pb2_grpc.ServerReflectionStub(service.channel)  # type: ignore[arg-type]  # the stub accepts only a sync channel
    call = reflection.ServerReflectionInfo(metadata=with_request_id("listing"), timeout=TIMEOUT)
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await call.done_writing()
    replies = [reply async for reply in call]

    assert len(replies) == 1 and request_id_in(await call.trailing_metadata()) == "listing"
    line = log.access("listing")
    assert line["method"] == "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    assert (line["code"], line["level"]) == ("OK", "INFO")


async def test_a_stream_the_caller_cancels_is_logged_as_cancelled(
    service: Service, log: JsonLog
) -> None:
    watch = health_pb2_grpc.HealthStub(service.channel).Watch(  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        health_pb2.HealthCheckRequest(), metadata=with_request_id("watcher"), timeout=TIMEOUT
    )
    await watch.read()  # the current status: the stream is open
    watch.cancel()

    line = await log.access_eventually("watcher")
    assert (line["method"], line["code"]) == ("/grpc.health.v1.Health/Watch", "CANCELLED")


async def test_calls_refused_by_caller_authentication_are_logged_without_the_key(
    moto_endpoint: str, smtp_server: CapturingSmtpServer, log: JsonLog
) -> None:
    key = new_api_key()
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        api_keys=[ApiKey(name="billing", sha256=api_key_sha256(key), roles=("admin",))],
    )
    async with serving(settings, smtp_server) as service:
        refused, refused_id = await error_trailers(
            service.stub.GetJwks(
                pb.GetJwksRequest(), metadata=with_request_id("no-key"), timeout=TIMEOUT
            )
        )
        admitted = await ok_trailers(
            service.stub.GetJwks(
                pb.GetJwksRequest(),
                metadata=(("authorization", f"Bearer {key}"), ("x-request-id", "with-key")),
                timeout=TIMEOUT,
            )
        )

    assert (refused.code(), refused_id) == (grpc.StatusCode.UNAUTHENTICATED, "no-key")
    assert log.access("no-key")["code"] == "UNAUTHENTICATED"
    assert admitted == "with-key" and log.access("with-key")["code"] == "OK"
    assert key not in log.text()


async def test_throttling_is_logged_under_the_request_id_of_the_call_it_slowed(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy, log: JsonLog
) -> None:
    async with serve_through_proxy(dynamodb_max_attempts=2) as service:
        user = await registered(service)
        fault_proxy.throttle(1.0, operations=["GetItem"])
        error, request_id = await error_trailers(
            service.stub.GetUser(
                pb.GetUserRequest(id=user.id), metadata=with_request_id("slowed"), timeout=TIMEOUT
            )
        )
        fault_proxy.pass_through()

    assert (error.code(), request_id) == (grpc.StatusCode.UNAVAILABLE, "slowed")
    lines = [entry for entry in log.entries() if entry.get("request_id") == "slowed"]
    by_logger = [(entry["logger"], entry["level"]) for entry in lines]
    assert by_logger == [
        ("persistence.call_observer", "WARNING"),  # attempt 1
        ("persistence.call_observer", "WARNING"),  # attempt 2
        ("persistence.call_observer", "WARNING"),  # needed 1 retries
        ("server.status", "WARNING"),  # storage unavailable
        ("user_service.access", "INFO"),
    ]
    throttles = lines[:2]
    assert [(entry["operation"], entry["attempt"]) for entry in throttles] == [
        ("GetItem", 1),
        ("GetItem", 2),
    ]
    assert {entry["error_code"] for entry in throttles} == {
        "ProvisionedThroughputExceededException"
    }
    assert lines[-1]["code"] == "UNAVAILABLE"
    assert user.email not in log.text() and user.id not in log.text()


async def test_a_call_cut_off_by_its_deadline_is_logged_as_deadline_exceeded(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy, log: JsonLog
) -> None:
    async with serve_through_proxy() as service:
        user = await registered(service)
        fault_proxy.delay(5.0, operations=["GetItem"])
        error = await rpc_error(
            service.stub.GetUser(
                pb.GetUserRequest(id=user.id), metadata=with_request_id("late"), timeout=1.5
            )
        )
        line = await log.access_eventually("late")
        fault_proxy.pass_through()

    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert line["code"] == "DEADLINE_EXCEEDED"
    assert line["duration_ms"] >= 1000
