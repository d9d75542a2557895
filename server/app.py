"""Wires the service: gRPC server, DynamoDB, hashing, health, and their orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from biome.user.v1 import user_service_pb2, user_service_pb2_grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from domain.event_page_tokens import EventPageTokenCodec
from domain.page_tokens import PageTokenCodec
from domain.password_policy import common_passwords
from domain.ports import Clock
from persistence.dynamodb_client import open_dynamodb_client
from persistence.event_store import DynamoEventStore
from persistence.readiness import check_ready
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from persistence.unit_of_work import DynamoUnitOfWork
from server import auth_config
from server.access_tokens import JwtAccessTokenIssuer
from server.background import BackgroundTasks
from server.caller_auth import CallerAuthInterceptor
from server.draining import DrainGate
from server.embedded_dynamodb import EmbeddedDynamoDb
from server.event_stream import EventStreams
from server.health import HealthLoop
from server.metrics import Metrics, MetricsEndpoint, start_metrics_endpoint
from server.observed_calls import ObservedCalls
from server.passwords import Argon2PasswordHasher
from server.servicer import UserServiceServicer
from server.settings import Settings
from server.status import DomainErrorInterceptor
from server.storage import dynamodb_options, table_names

log = logging.getLogger(__name__)

# Every request of this API fits in a few KiB; anything far larger is refused before a handler runs.
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024
# A readiness read that takes longer than this means DynamoDB is not answering as it should;
# with the default probe interval, a silent backend shows as NOT_SERVING within 5 s.
HEALTH_PROBE_TIMEOUT_SECONDS = 2.0
# How long the shutdown waits for WatchEvents streams to send their UNAVAILABLE, at most.
STREAMS_END_SECONDS = 1.0
SERVICE_NAMES = (
    user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
)


def create_server(
    servicer: UserServiceServicer,
    health_servicer: health.aio.HealthServicer,
    address: str,
    *,
    caller_auth: CallerAuthInterceptor | None = None,
    credentials: grpc.ServerCredentials | None = None,
    loopback_port: int | None = None,
    drain_gate: DrainGate | None = None,
    observed_calls: ObservedCalls | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server with UserService, health and reflection on ``address``; its port.

    Callers are checked first (when ``caller_auth`` is given), then domain errors are mapped.
    ``loopback_port`` adds a plaintext listener on 127.0.0.1 only, so a health check inside
    the container needs no certificate; the same caller checks apply there. ``drain_gate``
    comes first of all: at shutdown it refuses new calls and counts those under way; only
    ``observed_calls`` (request id, access log, metrics) comes before it, to see refusals too.
    """
    interceptors: list[grpc.aio.ServerInterceptor] = [DomainErrorInterceptor()]
    if caller_auth is not None:
        interceptors.insert(0, caller_auth)
    if drain_gate is not None:
        interceptors.insert(0, drain_gate)
    if observed_calls is not None:
        interceptors.insert(0, observed_calls)
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES)],
    )
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
        endpoint = settings.dynamodb_endpoint
        if settings.uses_embedded_dynamodb:
            embedded = EmbeddedDynamoDb()
            endpoint = await asyncio.to_thread(embedded.start)
            stack.push_async_callback(asyncio.to_thread, embedded.stop)
        metrics = Metrics() if settings.metrics_port is not None else None
        client = await stack.enter_async_context(
            open_dynamodb_client(dynamodb_options(settings, endpoint), observer=metrics)
        )
        tables = table_names(settings)
        if settings.creates_tables:
            created = await ensure_tables(client, tables)
            log.info(
                "DynamoDB tables created: %s",
                ", ".join(created) if created else "none, all present",
            )

        hasher = Argon2PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            workers=settings.password_hash_workers,
        )
        stack.callback(hasher.shutdown)
        # File reads and the common-password list's decompression happen now, off the loop,
        # rather than inside the first request that needs them.
        await asyncio.to_thread(common_passwords)
        issuer = JwtAccessTokenIssuer(
            await asyncio.to_thread(auth_config.signing_keys, settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            lifetime_seconds=settings.access_token_lifetime_seconds,
        )
        # One grace for the whole shutdown: the background work gets what the calls leave of it.
        grace = _ShutdownGrace(settings.shutdown_grace_seconds)
        later = BackgroundTasks()
        stack.push_async_callback(lambda: later.drain(grace.remaining()))
        service_clock = clock or (lambda: datetime.now(UTC))
        page_token_key = _page_token_key(settings)
        event_log = DynamoEventStore(client, tables)
        event_streams = EventStreams(
            event_log,
            service_clock,
            settle_seconds=settings.events_settle_seconds,
            poll_interval_seconds=settings.events_poll_interval_seconds,
            retention_days=settings.events_retention_days,
            max_watchers=settings.max_event_watchers,
        )
        servicer = UserServiceServicer(
            uow_factory=lambda: DynamoUnitOfWork(
                client,
                tables,
                clock=service_clock,  # RecordedAt: the clock the event stream's settle delay uses
                events_retention=timedelta(days=settings.events_retention_days),
                on_committed=None if metrics is None else metrics.record_committed_events,
            ),
            hasher=hasher,
            clock=service_clock,
            page_tokens=PageTokenCodec(page_token_key),
            issuer=issuer,
            jwks=issuer.jwks,
            notifier=auth_config.notifier(settings),
            policy=auth_config.auth_policy(settings),
            later=later,
            event_log=event_log,
            event_page_tokens=EventPageTokenCodec(page_token_key),
            event_streams=event_streams,
        )
        health_servicer = health.aio.HealthServicer()
        health_loop = HealthLoop(
            health_servicer,
            lambda: check_ready(client, tables),
            interval=settings.health_check_interval_seconds,
            timeout=min(
                HEALTH_PROBE_TIMEOUT_SECONDS,
                settings.dynamodb_connect_timeout + settings.dynamodb_read_timeout,
            ),
        )
        requested = address or _host_port(settings.host, settings.port)
        credentials = auth_config.tls_credentials(settings)
        gate = DrainGate([SERVICE_NAMES[0]])
        server, port = create_server(
            servicer,
            health_servicer,
            requested,
            caller_auth=auth_config.caller_auth(settings),
            credentials=credentials,
            loopback_port=settings.health_port,
            drain_gate=gate,
            observed_calls=ObservedCalls(metrics),
        )
        metrics_endpoint: MetricsEndpoint | None = None
        if metrics is not None and settings.metrics_port is not None:
            # Stopped last (pushed before the drain): scrapes still answer during the shutdown.
            metrics_endpoint = await asyncio.to_thread(
                start_metrics_endpoint, metrics, settings.metrics_address, settings.metrics_port
            )
            stack.push_async_callback(asyncio.to_thread, metrics_endpoint.stop)
            log.info(
                "Prometheus metrics on http://%s:%d/metrics",
                settings.metrics_address,
                metrics_endpoint.port,
            )

        await health_loop.start()
        stack.push_async_callback(health_loop.stop)
        await server.start()
        stack.push_async_callback(_drain, server, health_loop, gate, event_streams, grace)
        log.info(
            "user-service listening on %s:%d (profile %s, %s, callers %s)",
            requested.rpartition(":")[0],
            port,
            settings.profile,
            "TLS" if credentials is not None else "plaintext",
            "authenticated" if settings.authenticates_callers else "not authenticated",
        )
        yield RunningService(
            server=server,
            port=port,
            client=client,
            tables=tables,
            jwks=issuer.jwks(),
            metrics_port=None if metrics_endpoint is None else metrics_endpoint.port,
        )


async def serve(settings: Settings) -> None:
    """Runs the service until SIGTERM or SIGINT, then shuts it down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with running_service(settings):
            await stop.wait()
            log.info(
                "Shutting down: finishing in-flight calls (at most %.1f s)",
                settings.shutdown_grace_seconds,
            )
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    log.info("user-service stopped")


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


def _page_token_key(settings: Settings) -> bytes:
    if settings.page_token_secret is not None:
        return settings.page_token_secret.get_secret_value().encode()
    if settings.is_production:
        log.warning(
            "USER_SERVICE_PAGE_TOKEN_SECRET is not set: page tokens will not survive a restart "
            "or work across replicas"
        )
    return secrets.token_bytes(32)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
