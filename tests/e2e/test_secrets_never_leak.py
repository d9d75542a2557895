"""Passwords and tokens never reach a log line, a stored item or an error message."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

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
from tests.smtp_server import reset_token_from

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
