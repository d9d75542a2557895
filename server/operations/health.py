"""Keeps the standard gRPC health status in step with whether DynamoDB answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import OVERALL_HEALTH
from grpc_health.v1.health import aio as health_aio

from server.rpc_access import USER_SERVICE_NAME

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

ReadinessCheck = Callable[[], Awaitable[None]]


class HealthLoop:
    """Probes readiness every ``interval`` seconds; SERVING only while the last probe succeeded."""

    def __init__(
        self,
        servicer: health_aio.HealthServicer,
        check: ReadinessCheck,
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self._servicer = servicer
        self._check = check
        self._interval = interval
        self._timeout = timeout
        self._serving: bool | None = None
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Probes once, so the status is known before anyone asks, then probes in the background."""
        await self.probe_once()
        self._task = asyncio.create_task(self._run(), name="health-loop")

    async def probe_once(self) -> bool:
        """Runs one readiness check, updates the health status and returns whether it passed."""
        try:
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancel that arrives as the
            # check ends, and then stop() would wait for a loop that goes on probing.
            async with asyncio.timeout(self._timeout):
                await self._check()
        except Exception as error:  # any failure means "do not send traffic here"
            if self._serving is not False:
                log.warning(
                    "DynamoDB is not answering; health is NOT_SERVING: %s", _describe(error)
                )
            self._serving = False
            await self._set(NOT_SERVING)
            return False
        if self._serving is not True:
            log.info("DynamoDB answers; health is SERVING")
        self._serving = True
        await self._set(SERVING)
        return True

    @property
    def ready(self) -> bool:
        """Whether to send traffic here: the last probe passed and the drain has not begun."""
        return self._serving is True and not self._draining

    async def enter_graceful_shutdown(self) -> None:
        """NOT_SERVING for good, so clients and load balancers drain this instance."""
        self._draining = True
        await self._servicer.enter_graceful_shutdown()

    async def stop(self) -> None:
        """Stops probing."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_once()

    async def _set(self, status: int) -> None:
        for service in (OVERALL_HEALTH, USER_SERVICE_NAME):
            await self._servicer.set(service, status)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "the readiness check timed out"
    return str(error) or type(error).__name__
