"""What gets built from the settings: the DynamoDB client and its tables, hashing, signing, mail,
the servicer, health, metrics and the interceptors in the order a call passes through them.

Everything that must be closed is registered on the caller's exit stack as it is built; starting,
draining and stopping are server.app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from grpc_health.v1 import health

from domain.pagination import EventPageTokenCodec, PageTokenCodec
from domain.passkeys import SignInCeremonyCodec
from domain.password_policy import common_passwords
from domain.ports import Clock
from domain.use_cases.sessions import session_in_force
from persistence.dynamodb_client import open_dynamodb_client
from persistence.event_store import DynamoEventStore
from persistence.readiness import check_ready
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from persistence.unit_of_work import DynamoUnitOfWork
from server import from_settings
from server.background import BackgroundTasks
from server.crypto.access_token_verifier import AccessTokenVerifier
from server.crypto.access_tokens import JwtAccessTokenIssuer
from server.crypto.passwords import Argon2PasswordHasher
from server.embedded_dynamodb import EmbeddedDynamoDb
from server.event_stream import EventStreams
from server.interceptors.concurrency_limit import ConcurrencyLimit
from server.interceptors.draining import DrainGate
from server.interceptors.errors import DomainErrorInterceptor
from server.interceptors.observed_calls import ObservedCalls
from server.interceptors.request_size import RequestSizeLimit
from server.interceptors.tracing import TracingInterceptor
from server.operations.health import HealthLoop
from server.operations.metrics import Metrics
from server.operations.tracing import tracing_from_environment
from server.rpc_access import PUBLIC_SERVICES, USER_SERVICE_NAME
from server.servicer import UserServiceServicer
from server.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAMES = (USER_SERVICE_NAME, *PUBLIC_SERVICES)
# A readiness read that takes longer than this means DynamoDB is not answering as it should;
# with the default probe interval, a silent backend shows as NOT_SERVING within 5 s.
HEALTH_PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class BuiltService:
    """Every part of the service, built and not yet started."""

    client: Any
    tables: TableNames
    servicer: UserServiceServicer
    health_servicer: health.aio.HealthServicer
    health_loop: HealthLoop
    event_streams: EventStreams
    background: BackgroundTasks
    drain_gate: DrainGate
    # In the order a call passes through them, outermost first.
    interceptors: tuple[grpc.aio.ServerInterceptor, ...]
    credentials: grpc.ServerCredentials | None
    metrics: Metrics | None
    jwks: list[dict[str, str]]


async def build_service(
    settings: Settings, stack: contextlib.AsyncExitStack, *, clock: Clock | None = None
) -> BuiltService:
    """Builds what ``settings`` describe; what needs closing is pushed onto ``stack``.

    ``clock`` replaces the system clock (tests move time to end lock-outs and sessions).
    """
    # Reads and tries out the mail templates first: a broken one stops the start at once.
    notifier = await asyncio.to_thread(from_settings.notifier, settings)
    # From the OTEL_* variables; None (nothing installed) unless an exporter is configured.
    # Shut down last of all (first on the stack): after the drain and the background work, so
    # their spans are exported too.
    tracing = tracing_from_environment()
    if tracing is not None:
        stack.push_async_callback(asyncio.to_thread, tracing.shutdown)
    tracer = None if tracing is None else tracing.tracer
    endpoint = settings.dynamodb_endpoint
    if settings.uses_embedded_dynamodb:
        embedded = EmbeddedDynamoDb()
        endpoint = await asyncio.to_thread(embedded.start)
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
    metrics = Metrics() if settings.metrics_port is not None else None
    client = await stack.enter_async_context(
        open_dynamodb_client(
            from_settings.dynamodb_options(settings, endpoint), observer=metrics, tracer=tracer
        )
    )
    tables = from_settings.table_names(settings)
    if settings.creates_tables:
        created = await ensure_tables(client, tables)
        log.info(
            "DynamoDB tables created: %s", ", ".join(created) if created else "none, all present"
        )

    hasher = Argon2PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        workers=settings.password_hash_workers,
        max_waiting=settings.password_hash_max_waiting,
        accepted_formats=settings.legacy_hash_formats,
    )
    stack.callback(hasher.shutdown)
    # File reads and the common-password list's decompression happen now, off the loop,
    # rather than inside the first request that needs them.
    await asyncio.to_thread(common_passwords)
    signing_keys = await asyncio.to_thread(from_settings.signing_keys, settings)
    issuer = JwtAccessTokenIssuer(
        signing_keys,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime_seconds=settings.access_token_lifetime_seconds,
    )
    service_clock = clock or (lambda: datetime.now(UTC))
    page_token_key = _page_token_key(settings)
    event_log = DynamoEventStore(client, tables)
    event_streams = EventStreams(
        event_log,
        service_clock,
        settle_seconds=settings.events_settle_seconds,
        lookback_seconds=settings.events_lookback_seconds,
        poll_interval_seconds=settings.events_poll_interval_seconds,
        retention_days=settings.events_retention_days,
        max_watchers=settings.max_event_watchers,
    )
    background = BackgroundTasks(max_jobs=settings.max_background_jobs, tracer=tracer)

    def unit_of_work() -> DynamoUnitOfWork:
        return DynamoUnitOfWork(
            client,
            tables,
            clock=service_clock,  # RecordedAt: the clock the event stream's settle delay uses
            events_retention=timedelta(days=settings.events_retention_days),
            events_stream_shards=settings.events_stream_shards,
            on_committed=None if metrics is None else metrics.record_committed_events,
            session_idle_lifetime=timedelta(seconds=settings.session_idle_lifetime_seconds),
        )

    policy = from_settings.auth_policy(settings)
    legacy = from_settings.legacy_authenticator(settings, tracing)
    if legacy is not None:
        stack.push_async_callback(legacy.close)
        log.info("lazy migration on: unknown emails at sign-in are asked of the old system")
    servicer = UserServiceServicer(
        uow_factory=unit_of_work,
        hasher=hasher,
        clock=service_clock,
        page_tokens=PageTokenCodec(page_token_key),
        issuer=issuer,
        jwks=issuer.jwks,
        notifier=notifier,
        policy=policy,
        later=background,
        event_log=event_log,
        event_page_tokens=EventPageTokenCodec(page_token_key),
        event_streams=event_streams,
        totp_codes=from_settings.totp_codes(settings),
        webauthn=from_settings.relying_party(settings),
        # Sealed with the page tokens' key: its format byte keeps either from passing for the other.
        passkey_ceremonies=SignInCeremonyCodec(page_token_key),
        legacy=legacy,
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
    drain_gate = DrainGate([USER_SERVICE_NAME])
    caller_auth = from_settings.caller_auth(
        settings,
        AccessTokenVerifier(
            signing_keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            clock=service_clock,
        ),
        # A user token is refused once its session has ended (two reads per call carrying one).
        lambda token: session_in_force(
            unit_of_work(),
            service_clock,
            policy,
            user_id=token.user_id,
            session_id=token.session_id,
        ),
        clock=service_clock,  # the recent-sign-in window is measured on it
    )
    # Only when tracing is on: outermost, so that the access line is written inside the span.
    traced: tuple[grpc.aio.ServerInterceptor, ...] = (
        ()
        if tracing is None
        else (TracingInterceptor(tracing.tracer, tracing.propagator, [USER_SERVICE_NAME]),)
    )
    interceptors = (
        *traced,
        # First (inside the span, when traced), to see every call, refusals included: request
        # id, access log, metrics.
        ObservedCalls(metrics, traced=tracing is not None),
        # At shutdown, refuses new calls and counts those under way.
        drain_gate,
        # Refuses calls beyond the cap; reads the gate's count, so it comes after the gate.
        ConcurrencyLimit(drain_gate, settings.max_concurrent_rpcs, [USER_SERVICE_NAME]),
        # After the request id and access line: an oversized request's refusal carries both.
        RequestSizeLimit(),
        # Who calls, for whom, and whether they may.
        caller_auth,
        # Last, around the handler: its exceptions become statuses.
        DomainErrorInterceptor(),
    )
    return BuiltService(
        client=client,
        tables=tables,
        servicer=servicer,
        health_servicer=health_servicer,
        health_loop=health_loop,
        event_streams=event_streams,
        background=background,
        drain_gate=drain_gate,
        interceptors=interceptors,
        credentials=from_settings.tls_credentials(settings),
        metrics=metrics,
        jwks=issuer.jwks(),
    )


def _page_token_key(settings: Settings) -> bytes:
    if settings.page_token_secret is not None:
        return settings.page_token_secret.get_secret_value().encode()
    if settings.is_production:
        log.warning(
            "USER_SERVICE_PAGE_TOKEN_SECRET is not set: page tokens will not survive a restart "
            "or work across replicas"
        )
    return secrets.token_bytes(32)
