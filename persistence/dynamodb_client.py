"""Opens the one aiobotocore DynamoDB client a process shares, with set timeouts and retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from opentelemetry.trace import Tracer

from persistence.call_observer import CallHooks, DynamoDbCallObserver
from persistence.deadline import refuse_after_deadline

# Sent as is: botocore otherwise rebuilds its User-Agent string (SDK, OS, Python, features,
# config) twice per request, about 100 us of CPU per DynamoDB call (issue 20).
USER_AGENT = "user-service"


@dataclass(frozen=True)
class DynamoDbOptions:
    """Where DynamoDB is and how patiently to talk to it."""

    region: str
    endpoint_url: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    max_attempts: int = 3  # botocore "standard" retry mode, total_max_attempts
    max_pool_connections: int = 64
    access_key_id: str | None = None  # None -> botocore's usual credential chain
    secret_access_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")


@cache
def _session() -> AioSession:
    # One session per process: it caches the parsed service model, so later clients open quickly.
    return get_session()


@asynccontextmanager
async def open_dynamodb_client(
    options: DynamoDbOptions,
    *,
    observer: DynamoDbCallObserver | None = None,
    tracer: Tracer | None = None,
) -> AsyncIterator[Any]:
    """Yield one DynamoDB client (safe to share between tasks); its connections close on exit.

    No request of the client starts after the deadline of the RPC it serves (persistence.deadline).
    Throttles and retries are logged; every call is reported to ``observer`` when one is given,
    and is a span of ``tracer`` when one is given (persistence.call_observer).
    """
    config = AioConfig(
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"mode": "standard", "total_max_attempts": options.max_attempts},
        max_pool_connections=options.max_pool_connections,
        user_agent=USER_AGENT,
        # The repository builds every request's parameters itself; a malformed one is refused
        # by DynamoDB as a ValidationException (mapped by persistence.errors) rather than by
        # botocore's shape walk before sending, which costs about 15 us per call.
        parameter_validation=False,
        # DynamoDB needs no request checksums; response CRC32s are still checked by the retries.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    async with _session().create_client(
        "dynamodb",
        region_name=options.region,
        endpoint_url=options.endpoint_url,
        aws_access_key_id=options.access_key_id,
        aws_secret_access_key=options.secret_access_key,
        config=config,
    ) as client:
        client.meta.events.register("before-send.dynamodb", refuse_after_deadline)
        CallHooks(observer, tracer=tracer).attach(client)
        yield client
