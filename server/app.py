"""The service's lifecycle: create the gRPC server, start what bootstrap built, serve until a
signal, then drain and stop everything in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from biome.user.v1 import user_service_pb2_grpc
from grpc_health.v1 import health, health_pb2_grpc

from domain.ports import Clock
from persistence.schema import TableNames
from server import from_settings, reflection
from server.bootstrap import SERVICE_NAMES, build_service
from server.event_stream import EventStreams
from server.http.listener import HttpListener, start_http_listener
from server.interceptors.draining import DrainGate
from server.interceptors.request_size import GRPC_RECEIVE_LIMIT_BYTES
from server.operations.health import HealthLoop
from server.operations.metrics import Metrics, MetricsEndpoint, start_metrics_endpoint
from server.servicer import UserServiceServicer
from server.settings import Settings

log = logging.getLogger(__name__)

# How long the shutdown waits for WatchEvents streams to send their UNAVAILABLE, at most.
STREAMS_END_SECONDS = 1.0


def create_server(
    servicer: UserServiceServicer,
    health_servicer: health.aio.HealthServicer,
    address: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    loopback_port: int | None = None,
    max_connection_age_seconds: float | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server with UserService, health and reflection on ``address``; its port.

    ``interceptors`` are listed in the order a call passes through them, outermost first.
    ``loopback_port`` adds a plaintext listener on 127.0.0.1 only, so a health check inside
    the container needs no certificate; the same caller checks apply there.
    ``max_connection_age_seconds`` sends each connection GOAWAY after that long (gRPC adds
    10 % jitter); its calls under way, streams included, finish on it without limit.
    """
    # Above the service's own limit (server.interceptors.request_size), which answers there.
    options: list[tuple[str, int]] = [("grpc.max_receive_message_length", GRPC_RECEIVE_LIMIT_BYTES)]
    if max_connection_age_seconds is not None:
        options.append(("grpc.max_connection_age_ms", round(max_connection_age_seconds * 1000)))
    server = grpc.aio.server(interceptors=interceptors, options=options)
    user_service_pb2_grpc.add_UserServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(SERVICE_NAMES, server)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    if loopback_port is not None:
        server.add_insecure_port(f"127.0.0.1:{loopback_port}")
    return server, port


@dataclass(frozen=True)
class RunningService:
    """A started service: where it listens, and the DynamoDB client and tables it uses."""

    server: grpc.aio.Server
    port: int
    client: Any
    tables: TableNames
    jwks: list[dict[str, str]]
    metrics_port: int | None = None  # where Prometheus scrapes, when metrics are on
    http_port: int | None = None  # the HTTP listener's (JWKS, discovery, probes), when it is on


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings, *, address: str | None = None, clock: Clock | None = None
) -> AsyncIterator[RunningService]:
    """Starts everything the settings describe; on exit, drains and stops it in reverse order.

    ``address`` overrides the settings' host and port (tests bind "127.0.0.1:0"); ``clock``
    replaces the system clock (tests move time to end lock-outs and sessions without sleeping).
    """
    if (missing := settings.unmet_serving_requirement()) is not None:
        raise ValueError(f"invalid settings: {missing}")
    async with contextlib.AsyncExitStack() as stack:
        built = await build_service(settings, stack, clock=clock)
        # One grace for the whole shutdown: the background work gets what the calls leave of it.
        grace = _ShutdownGrace(settings.shutdown_grace_seconds)
        stack.push_async_callback(lambda: built.background.drain(grace.remaining()))
        requested = address or _host_port(settings.host, settings.port)
        server, port = create_server(
            built.servicer,
            built.health_servicer,
            requested,
            interceptors=built.interceptors,
            credentials=built.credentials,
            loopback_port=settings.health_port,
            max_connection_age_seconds=settings.max_connection_age_seconds,
        )
        metrics_endpoint: MetricsEndpoint | None = None
        if built.metrics is not None and settings.metrics_port is not None:
            # Stopped last (pushed before the drain): scrapes still answer during the shutdown.
            metrics_endpoint = await asyncio.to_thread(
                start_metrics_endpoint,
                built.metrics,
                settings.metrics_address,
                settings.metrics_port,
            )
            stack.push_async_callback(asyncio.to_thread, metrics_endpoint.stop)
            log.info(
                "Prometheus metrics on http://%s:%d/metrics",
                settings.metrics_address,
                metrics_endpoint.port,
            )

        await built.health_loop.start()
        stack.push_async_callback(built.health_loop.stop)
        http = await _start_http_listener(settings, built.jwks, built.health_loop, built.metrics)
        if http is not None:
            # Stopped after the gRPC server (pushed before the drain): /readyz answers 503 while
            # the drain lasts, so the probe takes this instance out of rotation.
            stack.push_async_callback(http.stop)
        await server.start()
        stack.push_async_callback(
            _drain, server, built.health_loop, built.drain_gate, built.event_streams, grace
        )
        log.info(
            "user-service listening on %s:%d (profile %s, %s, callers %s)",
            requested.rpartition(":")[0],
            port,
            settings.profile,
            "TLS" if built.credentials is not None else "plaintext",
            "authenticated" if settings.authenticates_callers else "not authenticated",
        )
        yield RunningService(
            server=server,
            port=port,
            client=built.client,
            tables=built.tables,
            jwks=built.jwks,
            metrics_port=None if metrics_endpoint is None else metrics_endpoint.port,
            http_port=None if http is None else http.port,
        )


async def _start_http_listener(
    settings: Settings,
    jwks: list[dict[str, str]],
    health_loop: HealthLoop,
    metrics: Metrics | None,
) -> HttpListener | None:
    """The HTTP listener, when USER_SERVICE_HTTP_PORT is set; None otherwise."""
    if settings.http_port is None:
        return None
    ssl_context = from_settings.http_ssl_context(settings)
    http = await start_http_listener(
        host=settings.http_address,
        port=settings.http_port,
        ssl_context=ssl_context,
        public_url=settings.http_public_url,
        keys=jwks,
        issuer=settings.jwt_issuer,
        ready=lambda: health_loop.ready,
        metrics=metrics,
    )
    log.info(
        "HTTP (%s) on %s:%d: JWKS at %s/.well-known/jwks.json, probes, %s",
        "TLS" if ssl_context is not None else "plaintext",
        settings.http_address,
        http.port,
        http.public_url,
        "metrics" if metrics is not None else "no metrics",
    )
    return http


async def serve(settings: Settings) -> None:
    """Runs the service until SIGTERM or SIGINT, then shuts it down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_service(settings):
            freeze_startup_objects()
            await stop.wait()
            log.info(
                "Shutting down: finishing in-flight calls (at most %.1f s)",
                settings.shutdown_grace_seconds,
            )
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("user-service stopped")


def freeze_startup_objects() -> int:
    """Collects the start-up's garbage, then moves every object left (botocore's service model,
    the gRPC server, settings, modules: about 100,000, alive until the process ends) out of the
    garbage collector's sight; returns how many are frozen.

    Without it, each full collection walks them all: on the keep-alive stand-in one came every
    few thousand GetUser calls and held the event loop about 60 ms (issue 20's profile). Young
    objects are collected as before. Only ``serve`` calls it, once the service runs: tests that
    start many services in one process would otherwise keep the cycles of stopped ones.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class _ShutdownGrace:
    """The shutdown grace, one budget for every step of the shutdown; it runs from the first ask."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._deadline: float | None = None

    def remaining(self) -> float:
        if self._deadline is None:
            self._deadline = time.monotonic() + self._seconds
        return max(0.0, self._deadline - time.monotonic())


async def _drain(
    server: grpc.aio.Server,
    health_loop: HealthLoop,
    gate: DrainGate,
    streams: EventStreams,
    grace: _ShutdownGrace,
) -> None:
    """NOT_SERVING; new calls refused with UNAVAILABLE; the calls under way finish; then stop.

    ``server.stop(grace)`` alone would answer CANCELLED to calls that had reached the server but
    not yet a handler (grpc/grpc#41785), and wait the whole grace for any open stream (a client's
    health Watch). So the server keeps handing every call to a handler, where the gate refuses
    it, until none is under way and none is arriving; only streams are left for stop to cancel.
    WatchEvents streams never end on their own: they are ended first, with UNAVAILABLE, so that
    their callers reconnect to another replica with their cursor; the drain does not wait for them.
    """
    await health_loop.enter_graceful_shutdown()
    streams.close()
    gate.close()
    if not await gate.wait_until_quiet(grace.remaining()):
        log.warning("The shutdown grace is over: cancelling %d calls under way", gate.under_way)
    # The streams ended at close() (one blocked on a slow reader is cancelled by the stop); this
    # only lets their statuses go out first.
    await streams.wait_until_ended(min(STREAMS_END_SECONDS, grace.remaining()))
    await server.stop(0)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
