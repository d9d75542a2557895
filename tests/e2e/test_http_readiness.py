"""/readyz follows the health loop: 503 while DynamoDB does not answer and from the first moment
of a drain, while /healthz stays 200 and the listener answers until the calls under way end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

import aiohttp
import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from server.app import RunningService, running_service
from server.settings import Settings
from tests.e2e.harness import service_settings
from tests.e2e.http_kit import fetch
from tests.fault_proxy import TRANSACTION, FaultProxy
from tests.smtp_server import CapturingSmtpServer

BACKEND_SETTINGS = {
    "dynamodb_connect_timeout": 1.0,
    "dynamodb_read_timeout": 1.0,
    "dynamodb_max_attempts": 2,
    "health_check_interval_seconds": 0.5,
}
NOT_READY_WITHIN = 5.0
READY_AGAIN_WITHIN = 10.0
HOLD_SECONDS = 4.0  # how long the proxy holds the write of the call under way at the drain


async def status_of(url: str) -> int:
    return (await fetch(url)).status


async def wait_for_status(url: str, status: int, within: float) -> float:
    """Seconds until ``url`` answers ``status``; fails after ``within``."""
    started = time.monotonic()
    while (await status_of(url)) != status:
        assert time.monotonic() - started < within, f"{url} not {status} after {within} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@asynccontextmanager
async def in_background(settings: Settings) -> AsyncIterator[tuple[RunningService, asyncio.Event]]:
    """The service in a task of its own; setting the event it yields starts the shutdown."""
    stop = asyncio.Event()
    started: asyncio.Future[RunningService] = asyncio.get_running_loop().create_future()

    async def run() -> None:
        async with running_service(settings, address="127.0.0.1:0") as running:
            started.set_result(running)
            await stop.wait()

    task = asyncio.create_task(run())
    try:
        yield await asyncio.wait_for(asyncio.shield(started), 30), stop
    finally:
        stop.set()
        await task


@pytest.mark.slow
async def test_not_ready_while_dynamodb_is_gone_and_ready_again_when_it_is_back(
    fault_proxy: FaultProxy, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(fault_proxy.url, smtp_server, http_port=0, **BACKEND_SETTINGS)
    async with running_service(settings, address="127.0.0.1:0") as running:
        base = f"http://127.0.0.1:{running.http_port}"
        assert await status_of(base + "/readyz") == 200

        fault_proxy.refuse()
        await wait_for_status(base + "/readyz", 503, NOT_READY_WITHIN)
        assert (await fetch(base + "/readyz")).json() == {"status": "not ready"}
        assert await status_of(base + "/healthz") == 200  # alive: do not restart it
        assert await status_of(base + "/.well-known/jwks.json") == 200  # needs no DynamoDB

        fault_proxy.accept()
        await wait_for_status(base + "/readyz", 200, READY_AGAIN_WITHIN)


@pytest.mark.slow
async def test_not_ready_from_the_start_of_the_drain_until_the_calls_under_way_end(
    fault_proxy: FaultProxy, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(
        fault_proxy.url, smtp_server, http_port=0, shutdown_grace_seconds=30.0
    )
    async with in_background(settings) as (running, stop):
        base = f"http://127.0.0.1:{running.http_port}"
        assert await status_of(base + "/readyz") == 200
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            fault_proxy.delay(HOLD_SECONDS, operations=[TRANSACTION], times=1)
            request = pb.RegisterUserRequest(
                email=f"drain-{uuid4().hex[:8]}@example.com",
                password="correct horse battery",
                first_name="Ada",
                last_name="Lovelace",
            )
            call = asyncio.ensure_future(stub.RegisterUser(request, timeout=60))
            while not fault_proxy.requests(TRANSACTION):  # its write is held at the proxy
                assert not call.done(), call
                await asyncio.sleep(0.05)

            stop.set()  # SIGTERM's effect: the drain begins
            took = await wait_for_status(base + "/readyz", 503, 2.0)
            alive = await status_of(base + "/healthz")
            under_way = not call.done()

            registered = await call
    with pytest.raises(aiohttp.ClientError):  # stopped after the gRPC server
        await fetch(base + "/healthz")

    assert took < 1.0
    assert alive == 200
    assert under_way  # 503 came while the call was still being served
    assert registered.email == request.email
