"""HealthLoop: SERVING only while readiness passes, each transition logged once, shutdown final."""

from __future__ import annotations

import asyncio
import logging

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from domain.errors import StorageUnavailable
from server.operations.health import HealthLoop
from server.rpc_access import USER_SERVICE_NAME

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """A readiness check that passes or fails as the test says, or hangs."""

    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.hang = False

    async def __call__(self) -> None:
        if self.hang:
            await asyncio.sleep(60)
        if self.failure is not None:
            raise self.failure


async def statuses(servicer: health_aio.HealthServicer) -> set[int]:
    replies = [
        await servicer.Check(health_pb2.HealthCheckRequest(service=name), None)  # type: ignore[arg-type, unused-ignore]
        for name in ("", USER_SERVICE_NAME)
    ]
    return {reply.status for reply in replies}


async def test_status_follows_the_readiness_check_and_logs_each_transition_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    servicer = health_aio.HealthServicer()
    readiness = Readiness()
    loop = HealthLoop(servicer, readiness, interval=60, timeout=1)

    with caplog.at_level(logging.INFO, logger="server.operations.health"):
        await loop.start()
        assert await statuses(servicer) == {SERVING}

        readiness.failure = StorageUnavailable("DynamoDB GetItem failed (EndpointConnectionError)")
        for _ in range(3):
            assert not await loop.probe_once()
        assert await statuses(servicer) == {NOT_SERVING}

        readiness.failure = None
        assert await loop.probe_once()
        assert await statuses(servicer) == {SERVING}
        await loop.stop()

    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "NOT_SERVING" in m]) == 1
    assert len([m for m in messages if "health is SERVING" in m]) == 2
    assert "EndpointConnectionError" in next(m for m in messages if "NOT_SERVING" in m)


async def test_a_hanging_check_times_out_as_not_serving() -> None:
    servicer = health_aio.HealthServicer()
    readiness = Readiness()
    readiness.hang = True
    loop = HealthLoop(servicer, readiness, interval=60, timeout=0.05)

    assert not await loop.probe_once()
    assert await statuses(servicer) == {NOT_SERVING}


async def test_graceful_shutdown_is_not_serving_for_good() -> None:
    servicer = health_aio.HealthServicer()
    loop = HealthLoop(servicer, Readiness(), interval=0.01, timeout=1)
    await loop.start()

    await loop.enter_graceful_shutdown()
    await asyncio.sleep(0.05)  # the background loop keeps probing successfully

    assert await statuses(servicer) == {NOT_SERVING}
    await loop.stop()


async def test_stop_ends_the_loop_whenever_the_cancel_lands() -> None:
    # Cancels landing at every point of a probe, including just as the check ends (where
    # Python 3.11's asyncio.wait_for used to swallow them, leaving stop() waiting for ever).
    async def ready() -> None:
        await asyncio.sleep(0)

    hung = 0
    for steps in range(100):
        loop = HealthLoop(health_aio.HealthServicer(), ready, interval=0, timeout=5)
        await loop.start()
        task = loop._task
        assert task is not None
        for _ in range(steps % 7):
            await asyncio.sleep(0)
        stop = asyncio.create_task(loop.stop())
        done, _ = await asyncio.wait({stop}, timeout=0.5)
        if not done:
            hung += 1
            while not task.done():
                task.cancel()
                await asyncio.sleep(0.01)
            await stop

    assert hung == 0


async def test_ready_follows_the_probes_until_the_drain_begins_and_never_after() -> None:
    servicer = health_aio.HealthServicer()
    readiness = Readiness()
    loop = HealthLoop(servicer, readiness, interval=60, timeout=1)
    assert not loop.ready  # nothing probed yet

    await loop.start()
    assert loop.ready
    readiness.failure = StorageUnavailable("DynamoDB GetItem failed (EndpointConnectionError)")
    await loop.probe_once()
    assert not loop.ready
    readiness.failure = None
    await loop.probe_once()
    assert loop.ready

    await loop.enter_graceful_shutdown()
    assert not loop.ready
    assert await loop.probe_once()  # DynamoDB answers, but the drain has begun
    assert not loop.ready
    await loop.stop()
