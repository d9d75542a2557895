"""DynamoDB gone: UNAVAILABLE in bounded time, NOT_SERVING within 5 s, still up, recovers alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server.settings import Settings
from tests.e2e.harness import Service, rpc_error
from tests.fault_proxy import FaultProxy

if TYPE_CHECKING:
    from tests.e2e.conftest import ServeThroughProxy

CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 1.0
MAX_ATTEMPTS = 2
# botocore's "standard" retry waits at most 1, 2, 4 ... s (a random fraction of it) between tries.
MAX_BACKOFF = sum(2**i for i in range(MAX_ATTEMPTS - 1))
MARGIN = 3.0
# However the backend fails (refused, dropped, silent), an RPC needing it ends within this.
FAILS_WITHIN = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + MAX_BACKOFF + MARGIN
NOT_SERVING_WITHIN = 5.0
RECOVERS_WITHIN = 10.0
SETTINGS = {
    "dynamodb_connect_timeout": CONNECT_TIMEOUT,
    "dynamodb_read_timeout": READ_TIMEOUT,
    "dynamodb_max_attempts": MAX_ATTEMPTS,
    "health_check_interval_seconds": 0.5,
}
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# How the backend goes away, and how it comes back.
OUTAGES: dict[str, tuple[Callable[[FaultProxy], None], Callable[[FaultProxy], None]]] = {
    "connections refused": (FaultProxy.refuse, FaultProxy.accept),
    "connections closed without an answer": (FaultProxy.drop, FaultProxy.pass_through),
    "answers that never come": (lambda proxy: proxy.delay(120.0), FaultProxy.pass_through),
}


def registration(email: str) -> pb.RegisterUserRequest:
    return pb.RegisterUserRequest(
        email=email, password="correct horse battery", first_name="Ada", last_name="Lovelace"
    )


async def health_of(service: Service) -> int:
    reply = await health_pb2_grpc.HealthStub(service.channel).Check(  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        health_pb2.HealthCheckRequest(), timeout=5
    )
    return int(reply.status)


async def wait_for_health(service: Service, status: int, within: float) -> float:
    """Seconds until the health service reports ``status``; fails after ``within``."""
    started = time.monotonic()
    while (await health_of(service)) != status:
        assert time.monotonic() - started < within, f"health not {status} after {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def assert_unavailable_in_bounded_time(service: Service) -> None:
    """A read and a write both fail UNAVAILABLE with RetryInfo, in bounded time, saying no more."""
    calls: dict[str, Awaitable[pb.User]] = {
        "GetUserByEmail": service.stub.GetUserByEmail(
            pb.GetUserByEmailRequest(email="ada@example.com"), timeout=30
        ),
        "RegisterUser": service.stub.RegisterUser(
            registration(f"{uuid4().hex[:8]}@example.com"), timeout=30
        ),
    }
    for method, call in calls.items():
        started = time.monotonic()
        error = await rpc_error(call)
        took = time.monotonic() - started
        assert error.code() is grpc.StatusCode.UNAVAILABLE, (method, error)
        assert took < FAILS_WITHIN, f"{method} took {took:.1f} s"
        status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
        assert "127.0.0.1" not in (error.details() or "")  # no internal address in the reply


@pytest.mark.slow
@pytest.mark.parametrize("outage", list(OUTAGES))
async def test_a_backend_outage_gives_unavailable_and_not_serving_and_the_service_recovers_alone(
    outage: str, fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    go_away, come_back = OUTAGES[outage]
    async with serve_through_proxy(**SETTINGS) as service:
        email = f"{uuid4().hex[:8]}@example.com"
        before = await service.stub.RegisterUser(registration(email))
        assert await health_of(service) == SERVING

        go_away(fault_proxy)
        await assert_unavailable_in_bounded_time(service)
        await wait_for_health(service, NOT_SERVING, NOT_SERVING_WITHIN)
        # Still up: it answers what needs no storage.
        assert (await service.stub.GetJwks(pb.GetJwksRequest(), timeout=5)).keys

        come_back(fault_proxy)
        await wait_for_health(service, SERVING, RECOVERS_WITHIN)
        found = await service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email))
        assert found.id == before.id
        await service.stub.RegisterUser(registration(f"{uuid4().hex[:8]}@example.com"))


@pytest.mark.slow
async def test_a_service_started_while_the_backend_is_gone_comes_up_not_serving_and_recovers(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    suffix = uuid4().hex[:8]
    tables = {
        "table_name": f"Users-{suffix}",
        "email_table_name": f"UserEmails-{suffix}",
        "events_table_name": f"UserEvents-{suffix}",
        "sessions_table_name": f"UserSessions-{suffix}",
    }
    async with serve_through_proxy(**SETTINGS, **tables):
        pass  # creates the tables

    fault_proxy.refuse()
    async with serve_through_proxy(**SETTINGS, **tables, ensure_tables_created=False) as service:
        assert await health_of(service) == NOT_SERVING
        await assert_unavailable_in_bounded_time(service)
        assert (await service.stub.GetJwks(pb.GetJwksRequest(), timeout=5)).keys

        fault_proxy.accept()
        await wait_for_health(service, SERVING, RECOVERS_WITHIN)
        await service.stub.RegisterUser(registration(f"{suffix}@example.com"))


@pytest.mark.slow
async def test_with_the_default_settings_a_silent_backend_is_not_serving_within_five_seconds(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    defaults = {
        name: Settings.model_fields[name].default
        for name in (
            "dynamodb_connect_timeout",
            "dynamodb_read_timeout",
            "dynamodb_max_attempts",
            "health_check_interval_seconds",
        )
    }
    async with serve_through_proxy(**defaults) as service:
        await wait_for_health(service, SERVING, RECOVERS_WITHIN)

        fault_proxy.delay(120.0)
        await wait_for_health(service, NOT_SERVING, NOT_SERVING_WITHIN)

        fault_proxy.pass_through()
        await wait_for_health(service, SERVING, RECOVERS_WITHIN)
