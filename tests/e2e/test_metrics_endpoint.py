"""Prometheus metrics scraped over HTTP from a running service, before and after real traffic."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from server.app import running_service
from server.settings import Settings
from tests.e2e.harness import MovableClock, rpc_error, service_settings
from tests.fault_proxy import FaultProxy
from tests.smtp_server import CapturingSmtpServer

TIMEOUT = 10
SERVICE = "/biome.user.v1.UserService"
PASSWORD = "correct horse battery"
LOGIN_OUTCOMES = ("success", "failed", "overloaded", "disabled", "error")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(frozen=True)
class Scraped:
    """One scrape: every sample by name and labels."""

    samples: Samples

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and wanted <= sample_labels
        )

    def __sub__(self, earlier: Scraped) -> Scraped:
        keys = self.samples.keys() | earlier.samples.keys()
        return Scraped(
            {key: self.samples.get(key, 0.0) - earlier.samples.get(key, 0.0) for key in keys}
        )


async def scrape(port: int) -> Scraped:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as reply:
            assert reply.status == 200
            return str(reply.read().decode())

    text = await asyncio.to_thread(fetch)
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scraped(samples)


@dataclass(frozen=True)
class Metered:
    """A running service with metrics on, a stub to it, and the metrics' port."""

    stub: user_service_pb2_grpc.UserServiceAsyncStub
    metrics_port: int


@asynccontextmanager
async def metered(settings: Settings) -> AsyncIterator[Metered]:
    async with running_service(settings, address="127.0.0.1:0", clock=MovableClock()) as running:
        assert running.metrics_port is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Metered(user_service_pb2_grpc.UserServiceStub(channel), running.metrics_port)


def registration() -> pb.RegisterUserRequest:
    return pb.RegisterUserRequest(
        email=f"metrics-{uuid4().hex[:12]}@example.com",
        password=PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )


async def drive_traffic(stub: Any) -> None:
    """Register, read, a failed and a good sign-in, a logout, a NOT_FOUND: six RPCs."""
    request = registration()
    user = await stub.RegisterUser(request, timeout=TIMEOUT)
    await stub.GetUser(pb.GetUserRequest(id=user.id), timeout=TIMEOUT)
    wrong = pb.AuthenticateRequest(email=request.email, password="not the password")
    assert (await rpc_error(stub.Authenticate(wrong, timeout=TIMEOUT))).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    right = pb.AuthenticateRequest(email=request.email, password=PASSWORD)
    signed_in = await stub.Authenticate(right, timeout=TIMEOUT)
    await stub.Logout(pb.LogoutRequest(refresh_token=signed_in.refresh_token), timeout=TIMEOUT)
    missing = stub.GetUser(pb.GetUserRequest(id=str(uuid4())), timeout=TIMEOUT)
    assert (await rpc_error(missing)).code() == grpc.StatusCode.NOT_FOUND


async def test_counters_move_exactly_as_the_traffic_did(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(moto_endpoint, smtp_server, metrics_port=0)
    async with metered(settings) as service:
        before = await scrape(service.metrics_port)
        await drive_traffic(service.stub)
        after = await scrape(service.metrics_port)
    moved = after - before

    rpcs = "user_service_rpcs_total"
    expected = {
        ("RegisterUser", "OK"): 1,
        ("GetUser", "OK"): 1,
        ("GetUser", "NOT_FOUND"): 1,
        ("Authenticate", "UNAUTHENTICATED"): 1,
        ("Authenticate", "OK"): 1,
        ("Logout", "OK"): 1,
    }
    for (method, code), count in expected.items():
        assert moved.value(rpcs, method=f"{SERVICE}/{method}", code=code) == count, (method, code)
    assert moved.total(rpcs) == sum(expected.values())  # nothing else counted
    durations = "user_service_rpc_duration_seconds_count"
    assert moved.value(durations, method=f"{SERVICE}/GetUser") == 2
    assert moved.value(durations, method=f"{SERVICE}/Authenticate") == 2
    assert after.total("user_service_rpcs_in_flight") == 0
    assert {
        outcome: moved.value("user_service_logins_total", outcome=outcome)
        for outcome in LOGIN_OUTCOMES
    } == {
        "success": 1,
        "failed": 1,
        "overloaded": 0,
        "disabled": 0,
        "error": 0,
    }
    calls = "user_service_dynamodb_calls_total"
    assert (
        moved.value(calls, operation="TransactWriteItems", outcome="ok") >= 3
    )  # register, sign-ins, logout
    assert moved.value(calls, operation="GetItem", outcome="ok") >= 4
    assert (
        moved.total("user_service_dynamodb_call_duration_seconds_count", operation="GetItem") >= 4
    )
    assert moved.total("user_service_dynamodb_throttles_total") == 0
    # Declared with every reason at zero, before any session ends.
    assert before.value("user_service_sessions_revoked_total", reason="logout") == 0
    assert (
        "user_service_sessions_revoked_total",
        frozenset({("reason", "logout")}),
    ) in before.samples
    # The one Logout ended one session; it is counted once it has landed with its event.
    assert moved.value("user_service_sessions_revoked_total", reason="logout") == 1
    assert moved.total("user_service_sessions_revoked_total") == 1


async def test_throttles_and_retries_are_counted_by_operation(
    fault_proxy: FaultProxy, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(fault_proxy.url, smtp_server, metrics_port=0)
    async with metered(settings) as service:
        before = await scrape(service.metrics_port)
        fault_proxy.throttle(1.0, times=1, operations=["TransactWriteItems"])
        await service.stub.RegisterUser(registration(), timeout=TIMEOUT)
        after = await scrape(service.metrics_port)
    moved = after - before

    assert moved.value("user_service_dynamodb_throttles_total", operation="TransactWriteItems") == 1
    assert moved.value("user_service_dynamodb_retries_total", operation="TransactWriteItems") == 1
    assert (
        moved.value(
            "user_service_dynamodb_calls_total", operation="TransactWriteItems", outcome="ok"
        )
        == 1
    )
    assert moved.value("user_service_rpcs_total", method=f"{SERVICE}/RegisterUser", code="OK") == 1


async def test_the_endpoint_is_off_unless_configured_and_stops_with_the_service(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    async with running_service(
        service_settings(moto_endpoint, smtp_server), address="127.0.0.1:0"
    ) as running:
        assert running.metrics_port is None

    async with metered(service_settings(moto_endpoint, smtp_server, metrics_port=0)) as service:
        port = service.metrics_port
        assert (await scrape(port)).total("user_service_rpcs_total") == 0

    with pytest.raises(urllib.error.URLError):
        await scrape(port)
