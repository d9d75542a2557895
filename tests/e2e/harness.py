"""What end-to-end tests share: a handle on the running service, its settings, error helpers."""

from __future__ import annotations

import base64
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import grpc
from biome.user.v1 import user_service_pb2_grpc
from pydantic import SecretStr
from user_service_client import typed_error

from persistence.schema import TableNames
from server.settings import Settings
from tests.smtp_server import CapturingSmtpServer

PAGE_TOKEN_SECRET = "e2e-page-token-secret-0123456789"


class MovableClock:
    """The real time plus an offset a test may push forward (to end lock-outs, expire tokens)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass(frozen=True)
class Service:
    """A running service and how a test talks to it: stub, channel, the raw DynamoDB client."""

    stub: user_service_pb2_grpc.UserServiceAsyncStub
    channel: grpc.aio.Channel
    port: int
    dynamodb: Any
    tables: TableNames
    smtp: CapturingSmtpServer
    clock: MovableClock = field(default_factory=MovableClock)
    jwks: list[dict[str, str]] = field(default_factory=list)
    http_port: int | None = None  # the HTTP listener's, when USER_SERVICE_HTTP_PORT is set

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The HTTP listener's base URL (plaintext)."""
        assert self.http_port is not None, "the HTTP listener is off (set http_port)"
        return f"http://127.0.0.1:{self.http_port}"

    async def scan(self, table: str) -> list[dict[str, Any]]:
        """Every item of a table, read raw (strongly consistent)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = await self.dynamodb.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


TOTP_ENCRYPTION_KEYS = "e2e:" + base64.b64encode(b"e2e-totp-key-of-thirty-two-bytes").decode()


def service_settings(
    moto_endpoint: str, smtp: CapturingSmtpServer | None = None, **overrides: Any
) -> Settings:
    """Settings over moto with fresh tables (development unless ``profile`` is overridden);
    reset mail to ``smtp`` when given."""
    suffix = uuid4().hex[:8]
    if smtp is not None:
        overrides = {
            "notifier": "smtp",
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "smtp_timeout_seconds": 5.0,
            **overrides,
        }
    fields: dict[str, Any] = {
        "profile": "development",
        "dynamodb_endpoint": moto_endpoint,
        "embedded_dynamodb": False,
        "ensure_tables_created": True,
        "table_name": f"Users-{suffix}",
        "email_table_name": f"UserEmails-{suffix}",
        "events_table_name": f"UserEvents-{suffix}",
        "sessions_table_name": f"UserSessions-{suffix}",
        "page_token_secret": SecretStr(PAGE_TOKEN_SECRET),
        # One key for every instance, so that replicas over one table open each other's secrets.
        "totp_encryption_keys": SecretStr(TOTP_ENCRYPTION_KEYS),
        "password_hash_workers": 4,
        "shutdown_grace_seconds": 2.0,
        "health_check_interval_seconds": 0.5,
    }
    return Settings(**{**fields, **overrides})


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    """The error an RPC fails with; fails the test if the RPC succeeds."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError(f"expected the RPC to fail, it returned {reply!r}")


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations of a failed call: field -> description, as the
    client kit decodes them."""
    typed = typed_error(error)
    assert typed.status is not None, "the error carries no google.rpc.Status"
    return typed.violations_by_field()
