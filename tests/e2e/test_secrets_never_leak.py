"""Passwords, tokens and API keys never reach a log line, a stored item or an error message."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc_health.v1 import health_pb2

from persistence.schema import TableNames
from server.crypto.api_keys import api_key_sha256, new_api_key
from tests.conftest import free_port
from tests.e2e.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    Account,
    refresh,
    register,
    sign_in,
    token_hash,
    unique_email,
)
from tests.e2e.harness import Service, rpc_error
from tests.e2e.test_cli import cli_environment, health_status, start_cli
from tests.smtp_server import CapturingSmtpServer, reset_token_from

RESET_PASSWORD = "juniper-comet-71"
COMMON_PASSWORD = "password123"
# Every logger a secret could plausibly pass through; each is opened up to DEBUG for the test.
WATCHED_LOGGERS = ("", "grpc", "aiobotocore", "botocore", "aiosmtplib", "asyncio", "urllib3")
# aiosmtpd, the test's own SMTP server, logs whole received messages (reset links) at DEBUG.
TEST_SMTP_SERVER_LOGGERS = "mail"


@dataclass
class Secrets:
    """Every secret the flows handed out or presented, and what a leak check needs besides."""

    passwords: set[str] = field(default_factory=set)
    refresh_tokens: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    reset_tokens: list[str] = field(default_factory=list)
    errors: list[grpc.aio.AioRpcError] = field(default_factory=list)
    live_token_hashes: list[str] = field(default_factory=list)

    def raw(self) -> set[str]:
        """Each secret, and the part of it that is secret on its own (after a token's user id)."""
        found = set(self.passwords) | set(self.access_tokens)
        found |= {token.rsplit(".", 1)[-1] for token in self.access_tokens}  # the signature
        for token in [*self.refresh_tokens, *self.reset_tokens]:
            found |= {token, token.partition(".")[2]}
        assert all(len(secret) >= 16 for secret in found), "too short to search for"
        return found

    def keep(self, reply: pb.AuthenticateResponse | pb.RefreshSessionResponse) -> str:
        self.refresh_tokens.append(reply.refresh_token)
        self.access_tokens.append(reply.access_token)
        return reply.refresh_token

    async def fails(self, call: Awaitable[object], code: grpc.StatusCode) -> None:
        error = await rpc_error(call)
        assert error.code() == code, error
        self.errors.append(error)


async def run_every_flow(service: Service) -> Secrets:
    """Register, sign in and fail to, refresh and reuse, log out, change and reset passwords."""
    secrets = Secrets(passwords={PASSWORD, NEW_PASSWORD, WRONG_PASSWORD, RESET_PASSWORD})
    stub = service.stub
    account = await register(service)
    locked = await register(service, label="locked")

    def authenticate(email: str, password: str) -> Awaitable[object]:
        return stub.Authenticate(
            pb.AuthenticateRequest(email=email, password=password), timeout=TIMEOUT
        )

    def refresh_call(token: str) -> Awaitable[object]:
        return stub.RefreshSession(pb.RefreshSessionRequest(refresh_token=token), timeout=TIMEOUT)

    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    await secrets.fails(authenticate(account.email, WRONG_PASSWORD), unauthenticated)
    await secrets.fails(authenticate(unique_email("nobody"), PASSWORD), unauthenticated)

    # Sessions: rotate, a lost race, a forged token, a logout.
    first = secrets.keep(await sign_in(service, account.email, PASSWORD))
    other = secrets.keep(await sign_in(service, account.email, PASSWORD))
    previous = secrets.keep(await refresh(service, first))
    secrets.keep(await refresh(service, previous))
    await secrets.fails(refresh_call(previous), grpc.StatusCode.ABORTED)  # within the grace
    await secrets.fails(refresh_call(first), unauthenticated)  # retired: ends that session
    forged = f"{account.id}.{'x' * 43}"
    secrets.refresh_tokens.append(forged)  # not issued, but presented: no more to be echoed
    await secrets.fails(refresh_call(forged), unauthenticated)
    await stub.Logout(pb.LogoutRequest(refresh_token=other), timeout=TIMEOUT)
    await secrets.fails(refresh_call(other), unauthenticated)

    # Password change: wrong current password, a common new one, then for real.
    caller = await sign_in(service, account.email, PASSWORD)
    secrets.keep(caller)
    change = pb.ChangePasswordRequest(
        user_id=account.id, current_password=WRONG_PASSWORD, new_password=NEW_PASSWORD
    )
    await secrets.fails(stub.ChangePassword(change, timeout=TIMEOUT), unauthenticated)
    change.current_password, change.new_password = PASSWORD, COMMON_PASSWORD
    await secrets.fails(
        stub.ChangePassword(change, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT
    )
    change.new_password, change.keep_session_id = NEW_PASSWORD, caller.session_id
    await stub.ChangePassword(change, timeout=TIMEOUT)
    secrets.keep(await refresh(service, caller.refresh_token))

    # Password reset: a weak password refused, the reset done, the token reused.
    token = await requested_reset_token(service, account)
    secrets.reset_tokens.append(token)
    reset = pb.ResetPasswordRequest(reset_token=token, new_password=COMMON_PASSWORD)
    await secrets.fails(
        stub.ResetPassword(reset, timeout=TIMEOUT), grpc.StatusCode.INVALID_ARGUMENT
    )
    reset.new_password = RESET_PASSWORD
    await stub.ResetPassword(reset, timeout=TIMEOUT)
    await secrets.fails(stub.ResetPassword(reset, timeout=TIMEOUT), unauthenticated)
    await secrets.fails(authenticate(account.email, NEW_PASSWORD), unauthenticated)

    # Lock-out of another account: failures, then the right password refused for a while.
    for _ in range(5):
        await secrets.fails(authenticate(locked.email, WRONG_PASSWORD), unauthenticated)
    await secrets.fails(authenticate(locked.email, PASSWORD), grpc.StatusCode.RESOURCE_EXHAUSTED)

    # What stays stored: one live session, rotated once, and a pending reset.
    live = secrets.keep(await sign_in(service, account.email, RESET_PASSWORD))
    current = secrets.keep(await refresh(service, live))
    service.clock.advance(seconds=61)  # past the security mail cool-down of the first reset
    pending = await requested_reset_token(service, account)
    secrets.reset_tokens.append(pending)
    secrets.live_token_hashes = [token_hash(live), token_hash(current), token_hash(pending)]
    return secrets


async def requested_reset_token(service: Service, account: Account) -> str:
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )
    return reset_token_from(await service.smtp.wait_for_message(to=account.email))


def formatted(record: logging.LogRecord) -> str:
    """The record as any handler could write it: message, exception and stack."""
    parts = [record.getMessage(), record.exc_text or "", record.stack_info or ""]
    if record.exc_info and not record.exc_text:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_no_log_record_at_any_level_holds_a_password_or_token(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    for name in WATCHED_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)

    secrets = await run_every_flow(service)

    records = [r for r in caplog.records if not r.name.startswith(TEST_SMTP_SERVER_LOGGERS)]
    # The capture sees DynamoDB traffic at DEBUG, where request bodies are written out.
    assert any(r.name.startswith("botocore") and r.levelno == logging.DEBUG for r in records)
    texts = [(record.name, formatted(record)) for record in records]
    leaks = [(name, secret) for name, text in texts for secret in secrets.raw() if secret in text]
    assert not leaks, f"secrets in log records of {sorted({name for name, _ in leaks})}"


async def test_no_stored_item_holds_a_password_or_token_only_their_hashes(
    service: Service,
) -> None:
    secrets = await run_every_flow(service)

    items = [
        *await service.scan(service.tables.users),
        *await service.scan(service.tables.emails),
    ]

    stored = "\n".join(json.dumps(item, default=str, sort_keys=True) for item in items)
    assert [secret for secret in secrets.raw() if secret in stored] == []
    # The scan reads what a leak would land in: the hashes of the live tokens are there.
    assert all(digest in stored for digest in secrets.live_token_hashes)


async def test_no_error_message_echoes_a_password_or_token(service: Service) -> None:
    secrets = await run_every_flow(service)

    assert len(secrets.errors) >= 10
    details = [error.details() or "" for error in secrets.errors]
    debug = [error.debug_error_string() or "" for error in secrets.errors]
    texts = details + debug
    assert [secret for secret in secrets.raw() for text in texts if secret in text] == []


class _WithApiKey(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc, type-arg, unused-ignore]
    """Sends ``authorization: Bearer <key>`` with every unary call."""

    def __init__(self, key: str) -> None:
        self._authorization = ("authorization", f"Bearer {key}")

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        metadata = (*(details.metadata or ()), self._authorization)
        return await continuation(details._replace(metadata=metadata), request)


@pytest.mark.slow
async def test_a_served_process_logging_json_at_debug_writes_no_secret(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    key = new_api_key()
    port, suffix = free_port(), uuid4().hex[:8]
    tables = TableNames(users=f"Users-{suffix}", emails=f"UserEmails-{suffix}")
    entry = {"name": "tests", "sha256": api_key_sha256(key), "roles": ["admin"]}
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_DYNAMODB_ENDPOINT=moto_endpoint,
        USER_SERVICE_EMBEDDED_DYNAMODB="false",
        USER_SERVICE_TABLE_NAME=tables.users,
        USER_SERVICE_EMAIL_TABLE_NAME=tables.emails,
        USER_SERVICE_LOG_LEVEL="DEBUG",
        USER_SERVICE_LOG_FORMAT="json",
        USER_SERVICE_API_KEYS=json.dumps([entry]),
        USER_SERVICE_NOTIFIER="smtp",
        USER_SERVICE_SMTP_HOST=smtp_server.host,
        USER_SERVICE_SMTP_PORT=str(smtp_server.port),
        USER_SERVICE_SMTP_SECURITY="none",
        USER_SERVICE_PASSWORD_HASH_WORKERS="2",
        USER_SERVICE_SHUTDOWN_GRACE_SECONDS="5",
        # Its clock cannot be moved: let the flows' second reset mail go at once.
        USER_SERVICE_SECURITY_MAIL_COOLDOWN_SECONDS="0",
    )
    process = await start_cli("serve", environment=environment)
    output = asyncio.create_task(process.communicate())  # read from the start: pipes fill up
    try:
        deadline = time.monotonic() + 30
        while await health_status(port) != health_pb2.HealthCheckResponse.SERVING:
            assert process.returncode is None, "the server exited early"
            assert time.monotonic() < deadline, "not SERVING within 30 s"
            await asyncio.sleep(0.1)
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            interceptors=[_WithApiKey(key)],  # type: ignore[list-item, unused-ignore]
        ) as channel:
            service = Service(
                stub=user_service_pb2_grpc.UserServiceStub(channel),
                channel=channel,
                port=port,
                dynamodb=None,
                tables=tables,
                smtp=smtp_server,
            )
            secrets = await run_every_flow(service)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(output, timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
        await output

    log, errors = stdout.decode(), stderr.decode()
    assert process.returncode == 0, errors
    entries = [json.loads(line) for line in log.splitlines()]
    # The check has teeth: request bodies at DEBUG, and a line per RPC, are in what was read.
    assert any(e["logger"].startswith("botocore") and e["level"] == "DEBUG" for e in entries)
    access = [e for e in entries if e["logger"] == "user_service.access"]
    assert len(access) > 30 and all(e.get("request_id") for e in access)
    leaked = [secret for secret in [*secrets.raw(), key] if secret in log or secret in errors]
    assert not leaked, f"{len(leaked)} secrets in the served process's output"
