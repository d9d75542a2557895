"""Passwords, tokens and API keys never reach a log line, a stored item or an error message."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import uuid4

import grpc
import pyotp
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2
from pydantic import SecretStr

from datatools.export_command import export_command
from persistence.schema import TableNames
from server.crypto.access_tokens import generate_signing_keys, signing_key_pem
from server.crypto.api_keys import api_key_sha256, new_api_key
from server.operations.logging_config import configure_logging
from server.operations.wire_log_redaction import REDACTED
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
    sign_in_error,
    token_hash,
    unique_email,
)
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, rpc_error, service_settings
from tests.e2e.test_cli import cli_environment, health_status, start_cli
from tests.legacy_system import OldSystem, old_system
from tests.smtp_server import CapturingSmtpServer, reset_token_from, verification_code_from

RESET_PASSWORD = "juniper-comet-71"
LEGACY_PASSWORD = "saffron-glacier-58"
COMMON_PASSWORD = "password123"


@dataclass
class Secrets:
    """Every secret the flows handed out or presented, and what a leak check needs besides."""

    passwords: set[str] = field(default_factory=set)
    refresh_tokens: list[str] = field(default_factory=list)
    access_tokens: list[str] = field(default_factory=list)
    reset_tokens: list[str] = field(default_factory=list)
    verification_tokens: list[str] = field(default_factory=list)
    # Six digits are too short to search for alone: looked for after the word "code" in logs,
    # and whole in error messages and stored values.
    verification_codes: list[str] = field(default_factory=list)
    errors: list[grpc.aio.AioRpcError] = field(default_factory=list)
    live_token_hashes: list[str] = field(default_factory=list)
    # Sign-in challenges (CompleteSignIn's tokens), and the pending one's hash as it is stored
    # (its 32 bytes).
    challenge_tokens: list[str] = field(default_factory=list)
    live_challenge_hashes: list[bytes] = field(default_factory=list)
    # TOTP secrets (base 32, in clear) as enrollment showed them, and recovery codes as shown.
    totp_secrets: list[str] = field(default_factory=list)
    recovery_codes: list[str] = field(default_factory=list)

    def raw(self) -> set[str]:
        """Each secret, and the part of it that is secret on its own (after a token's user id)."""
        found = set(self.passwords) | set(self.access_tokens)
        found |= {token.rsplit(".", 1)[-1] for token in self.access_tokens}  # the signature
        tokens = [*self.refresh_tokens, *self.reset_tokens, *self.verification_tokens]
        for token in [*tokens, *self.challenge_tokens]:
            found |= {token, token.partition(".")[2]}
        found |= set(self.totp_secrets)
        for code in self.recovery_codes:  # as shown, and as it may be typed back
            found |= {code, code.upper(), code.replace("-", ""), code.replace("-", "").upper()}
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

    # Lock-out of another account: failures, the lock notice with its reset link, one more.
    for _ in range(5):
        await secrets.fails(authenticate(locked.email, WRONG_PASSWORD), unauthenticated)
    notice = await service.smtp.wait_for_message(to=locked.email)
    secrets.reset_tokens.append(reset_token_from(notice))
    await secrets.fails(authenticate(locked.email, WRONG_PASSWORD), unauthenticated)

    # Email changes: one confirmed (its tokens then reused), one cancelled, one left pending.
    change_tokens = {}
    for label in ("moved", "cancelled", "pending"):
        mover = await register(service, label=f"email-{label}")
        change_tokens[label] = await requested_email_change(service, mover)
        secrets.reset_tokens.extend(change_tokens[label])
    moved_confirm, moved_cancel = change_tokens["moved"]
    await stub.ConfirmEmailChange(
        pb.ConfirmEmailChangeRequest(token=moved_confirm), timeout=TIMEOUT
    )
    await secrets.fails(
        stub.ConfirmEmailChange(pb.ConfirmEmailChangeRequest(token=moved_confirm), timeout=TIMEOUT),
        unauthenticated,
    )
    await secrets.fails(
        stub.CancelEmailChange(pb.CancelEmailChangeRequest(token=moved_cancel), timeout=TIMEOUT),
        unauthenticated,
    )
    cancelled_confirm, cancelled_cancel = change_tokens["cancelled"]
    cancelling = pb.CancelEmailChangeRequest(token=cancelled_cancel)
    await stub.CancelEmailChange(cancelling, timeout=TIMEOUT)
    await secrets.fails(
        stub.ConfirmEmailChange(
            pb.ConfirmEmailChangeRequest(token=cancelled_confirm), timeout=TIMEOUT
        ),
        unauthenticated,
    )

    # Email verification: a wrong code, the right one, then the link it spent.
    unverified, mail = await verification_mail(service, "verify")
    link, code = reset_token_from(mail), verification_code_from(mail)
    secrets.verification_tokens.append(link)
    secrets.verification_codes.append(code)
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    by_code = pb.VerifyEmailRequest(email=unverified.email, code=wrong_code)
    await secrets.fails(stub.VerifyEmail(by_code, timeout=TIMEOUT), unauthenticated)
    by_code.code = code
    await stub.VerifyEmail(by_code, timeout=TIMEOUT)
    by_link = pb.VerifyEmailRequest(token=link)
    await secrets.fails(stub.VerifyEmail(by_link, timeout=TIMEOUT), unauthenticated)

    await second_factor_flows(service, secrets)

    # A second factor: TOTP enrolled; challenges met with a wrong code, the right one (then used
    # again), a recovery code; one left pending.
    totp_account = await register(service, label="totp")
    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=totp_account.id), timeout=TIMEOUT
    )
    secrets.totp_secrets.append(began.secret)
    app_code = pyotp.TOTP(began.secret).at(service.clock())
    secrets.verification_codes.append(app_code)
    confirm_totp = pb.ConfirmTotpEnrollmentRequest(user_id=totp_account.id, code=app_code)
    enrolled = await stub.ConfirmTotpEnrollment(confirm_totp, timeout=TIMEOUT)
    secrets.recovery_codes.extend(enrolled.recovery_codes)
    service.clock.advance(seconds=30)  # the app's next code

    async def challenge() -> str:
        reply = await sign_in(service, totp_account.email, PASSWORD)
        secrets.challenge_tokens.append(reply.challenge.challenge_token)
        return reply.challenge.challenge_token

    def complete(token: str, totp_code: str = "", recovery_code: str = "") -> Awaitable[Any]:
        request = pb.CompleteSignInRequest(challenge_token=token)
        if recovery_code:
            request.recovery_code = recovery_code
        else:
            request.totp_code = totp_code
        return stub.CompleteSignIn(request, timeout=TIMEOUT)

    challenged = await challenge()
    app_code = pyotp.TOTP(began.secret).at(service.clock())
    secrets.verification_codes.append(app_code)
    await secrets.fails(
        complete(challenged, totp_code=f"{(int(app_code) + 1) % 10**6:06d}"), unauthenticated
    )
    secrets.keep(await complete(challenged, totp_code=app_code))
    await secrets.fails(complete(challenged, totp_code=app_code), unauthenticated)
    forged_challenge = f"{totp_account.id}.{'y' * 43}"
    secrets.challenge_tokens.append(forged_challenge)
    await secrets.fails(complete(forged_challenge, totp_code=app_code), unauthenticated)
    secrets.keep(await complete(await challenge(), recovery_code=enrolled.recovery_codes[0]))
    pending_challenge = await challenge()
    # TOTP off again (the checks below count the factors second_factor_flows leaves stored); the
    # pending challenge stays until it expires, and can no longer be completed.
    turn_off = pb.DisableTotpRequest(user_id=totp_account.id, without_code=True)
    await stub.DisableTotp(turn_off, timeout=TIMEOUT)

    # What stays stored: one live session, rotated once, a pending reset, a pending change, a
    # pending verification and a pending sign-in challenge.
    live = secrets.keep(await sign_in(service, account.email, RESET_PASSWORD))
    current = secrets.keep(await refresh(service, live))
    service.clock.advance(seconds=61)  # past the security mail cool-down of the first reset
    pending = await requested_reset_token(service, account)
    secrets.reset_tokens.append(pending)
    _, pending_mail = await verification_mail(service, "pending")
    pending_link = reset_token_from(pending_mail)
    secrets.verification_tokens.append(pending_link)
    secrets.verification_codes.append(verification_code_from(pending_mail))
    secrets.live_token_hashes = [
        token_hash(live),
        token_hash(current),
        token_hash(pending),
        *(token_hash(token) for token in change_tokens["pending"]),
        token_hash(pending_link),
    ]
    secrets.live_challenge_hashes = [bytes.fromhex(token_hash(pending_challenge))]
    return secrets


async def second_factor_flows(service: Service, secrets: Secrets) -> None:
    """Two users enroll TOTP (a wrong code first), renew their recovery codes (a wrong code
    first), fail with a spent recovery code; one then turns TOTP off with a recovery code, the
    other keeps it; a third leaves an enrollment pending. Codes come from the clock as it is now
    (a served process's clock cannot be moved): each one of the next step, so none is reused."""
    stub = service.stub
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED

    def app_code(secret: str, steps_ahead: int = 0) -> str:
        return pyotp.TOTP(secret).at(service.clock() + timedelta(seconds=30 * steps_ahead))

    def wrong(code: str) -> str:
        return f"{(int(code) + 1) % 10**6:06d}"

    holders = [await register(service, label=f"totp-{label}") for label in ("off", "on")]
    renewed: list[list[str]] = []
    for holder in holders:
        began = await stub.BeginTotpEnrollment(
            pb.BeginTotpEnrollmentRequest(user_id=holder.id), timeout=TIMEOUT
        )
        secrets.totp_secrets.append(began.secret)
        confirming = pb.ConfirmTotpEnrollmentRequest(
            user_id=holder.id, code=wrong(app_code(began.secret))
        )
        await secrets.fails(
            stub.ConfirmTotpEnrollment(confirming, timeout=TIMEOUT), unauthenticated
        )
        confirming.code = app_code(began.secret)
        confirmed = await stub.ConfirmTotpEnrollment(confirming, timeout=TIMEOUT)
        secrets.recovery_codes.extend(confirmed.recovery_codes)
        renewing = pb.RegenerateRecoveryCodesRequest(
            user_id=holder.id, totp_code=wrong(app_code(began.secret, 1))
        )
        await secrets.fails(
            stub.RegenerateRecoveryCodes(renewing, timeout=TIMEOUT), unauthenticated
        )
        renewing.totp_code = app_code(began.secret, 1)
        reply = await stub.RegenerateRecoveryCodes(renewing, timeout=TIMEOUT)
        renewed.append(list(reply.recovery_codes))
        secrets.recovery_codes.extend(reply.recovery_codes)
        spent = pb.DisableTotpRequest(user_id=holder.id, recovery_code=confirmed.recovery_codes[0])
        await secrets.fails(stub.DisableTotp(spent, timeout=TIMEOUT), unauthenticated)
    # Typed back in capitals and without dashes: still accepted, still never echoed.
    off = renewed[0][0].replace("-", "").upper()
    await stub.DisableTotp(
        pb.DisableTotpRequest(user_id=holders[0].id, recovery_code=off), timeout=TIMEOUT
    )
    pending = await register(service, label="totp-pending")
    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=pending.id), timeout=TIMEOUT
    )
    secrets.totp_secrets.append(began.secret)


async def requested_email_change(service: Service, account: Account) -> tuple[str, str]:
    """Ask to move ``account`` to a fresh address: the confirm and the cancel token mailed."""
    new_email = unique_email("moved-to")
    await service.stub.RequestEmailChange(
        pb.RequestEmailChangeRequest(id=account.id, new_email=new_email, expected_version=1),
        timeout=TIMEOUT,
    )
    confirm = reset_token_from(await service.smtp.wait_for_message(to=new_email))
    cancel = reset_token_from(await service.smtp.wait_for_message(to=account.email))
    return confirm, cancel


async def verification_mail(service: Service, label: str) -> tuple[Account, EmailMessage]:
    account = await register(service, label=label, verified=False)
    return account, await service.smtp.wait_for_message(to=account.email)


async def requested_reset_token(service: Service, account: Account) -> str:
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )
    return reset_token_from(await service.smtp.wait_for_message(to=account.email))


# --- everything logged at DEBUG, by every logger, during every flow ------------------------------


@contextmanager
def everything_logged_at_debug() -> Iterator[io.StringIO]:
    """The service's own logging set-up at DEBUG (JSON lines into the returned stream), with every
    logger that exists opened up to DEBUG too; the process-wide logging state is put back after."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    factory = logging.getLogRecordFactory()
    loggers = [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    stream = io.StringIO()
    configure_logging("DEBUG", log_format="json", stream=stream)
    for logger in loggers:
        logger.setLevel(logging.NOTSET)  # the root's DEBUG applies to all
    try:
        yield stream
    finally:
        logging.setLogRecordFactory(factory)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(root_level)
        for logger, level in levels.items():
            logger.setLevel(level)


class SentAuthorizations:
    """The SigV4 Authorization header of every request the service's DynamoDB client sends."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def __call__(self, request: Any = None, **_: Any) -> None:
        value = request.headers.get("Authorization") if request is not None else None
        if value:
            self.values.add(value.decode() if isinstance(value, bytes) else value)

    def secrets(self) -> set[str]:
        """Each whole header and its signature alone."""
        signatures = {value.rpartition("Signature=")[2] for value in self.values}
        return self.values | signatures


def live_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items but the session items of an epoch their user has ended."""
    epochs = {
        item["Id"]["S"]: int(item["SessionEpoch"]["N"]) for item in items if "SessionEpoch" in item
    }

    def live(item: dict[str, Any]) -> bool:
        if "SessionKey" not in item:
            return True
        epoch = epochs.get(item["UserId"]["S"])
        return epoch is not None and item["SessionKey"]["S"].startswith(f"{epoch:010d}#")

    return [item for item in items if live(item)]


def stored_hashes(items: list[dict[str, Any]]) -> set[str]:
    """Every argon2id hash and token hash in raw DynamoDB items."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
        elif isinstance(value, str) and (
            value.startswith("$argon2") or re.fullmatch(r"[0-9a-f]{64}", value)
        ):
            found.add(value)

    walk(items)
    return found


@dataclass(frozen=True)
class StoredFactors:
    """The stored forms of second factors in raw user items: the sealed secrets of confirmed
    TOTP factors and of pending enrollments, and the recovery codes' hashes."""

    sealed: set[str]
    pending_sealed: set[str]
    recovery_hashes: set[str]

    @classmethod
    def of(cls, items: list[dict[str, Any]]) -> StoredFactors:
        return cls(
            sealed={i["Totp"]["M"]["Secret"]["S"] for i in items if "Totp" in i},
            pending_sealed={
                i["PendingTotp"]["M"]["Secret"]["S"] for i in items if "PendingTotp" in i
            },
            recovery_hashes={
                form
                for i in items
                if "RecoveryCodes" in i
                for form in _forms(i["RecoveryCodes"]["B"])
            },
        )

    def everything(self) -> set[str]:
        secrets = self.sealed | self.pending_sealed
        return secrets | {s.partition(":")[2] for s in secrets} | self.recovery_hashes


def _forms(packed: bytes) -> set[str]:
    """The recovery codes' hashes as stored (one binary value, 8 bytes a hash): the value in
    base64 (as DynamoDB's JSON and the export hold it) and each hash in hex."""
    return {base64.b64encode(packed).decode(), *(packed[i : i + 8].hex() for i in range(0, 80, 8))}


def stored_binaries(items: list[dict[str, Any]]) -> set[bytes]:
    """Every binary value in raw DynamoDB items."""
    found: set[bytes] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)
        elif isinstance(value, bytes | bytearray):
            found.add(bytes(value))

    walk(items)
    return found


def signing_key_secrets(pem: str) -> set[str]:
    """The private key as PEM body, raw hex and URL-safe base64 (a JWK's ``d``)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return {body, raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")}


async def run_lazy_migration(service: Service, legacy: OldSystem, secrets: Secrets) -> None:
    """Sign-ins through the lazy-migration hook: one brought over, one refused, and failures
    (garbage, too slow) until the breaker opens; each password sent to the old system."""
    brought, refused = LEGACY_PASSWORD, "quartz-meadow-62"
    asked = len(legacy.requests)  # the flows' unknown emails were asked too
    secrets.passwords |= {brought, refused}
    email = unique_email("legacy")
    legacy.add(email, brought, id=str(uuid4()))
    await sign_in(service, email, brought)
    other = unique_email("legacy")
    legacy.add(other, brought)
    await sign_in_error(service, other, refused)
    for behaviour in ("not-json", "slow", "slow"):  # the second failure opens the breaker
        legacy.behaviour, legacy.delay = behaviour, 1.0
        await sign_in_error(service, other, brought)
    assert len(legacy.requests) == asked + 4 and legacy.bad_signatures == 0


async def test_nothing_logged_at_debug_by_any_logger_holds_a_secret(
    moto_endpoint: str, smtp_server: CapturingSmtpServer, tmp_path: Path
) -> None:
    pem = signing_key_pem(generate_signing_keys())
    legacy_key = os.urandom(32)
    authorizations = SentAuthorizations()
    with everything_logged_at_debug() as log:
        async with (
            old_system(legacy_key) as legacy,
            serving(
                settings := service_settings(
                    moto_endpoint,
                    smtp_server,
                    jwt_signing_keys=SecretStr(pem),
                    legacy_auth_url=legacy.url,
                    legacy_auth_hmac_key=SecretStr(base64.b64encode(legacy_key).decode()),
                    legacy_auth_timeout_seconds=0.5,
                    legacy_auth_breaker_failures=2,
                ),
                smtp_server,
            ) as service,
        ):
            service.dynamodb.meta.events.register("before-send.dynamodb", authorizations)
            secrets = await run_every_flow(service)
            await run_lazy_migration(service, legacy, secrets)
            items = [
                *await service.scan(service.tables.users),
                *await service.scan(service.tables.emails),
                *await service.scan(service.tables.sessions),
            ]
            events_text = json.dumps(await service.scan(service.tables.events))
            export = tmp_path / "users.jsonl"
            exported = await asyncio.to_thread(
                export_command, settings, str(export), resume=False, page_size=2
            )
    entries = [json.loads(line) for line in log.getvalue().splitlines()]

    assert exported == 0
    hashes = stored_hashes(items)
    tokens = [*secrets.refresh_tokens, *secrets.reset_tokens, *secrets.verification_tokens]
    hashes |= {token_hash(token) for token in tokens}
    # What is searched for is real: hashes as stored, the export wrote them, requests were signed.
    assert (
        any(h.startswith("$argon2id$") for h in hashes) and set(secrets.live_token_hashes) <= hashes
    )
    # Sessions of an ended epoch are over (left to TTL) and not exported; the live ones are. A
    # pending verification is never exported (its code's salted hash would give the code away).
    exported_text = export.read_text()
    live = live_items(items)
    pending = [item["EmailVerification"] for item in live if "EmailVerification" in item]
    kept = [{k: v for k, v in item.items() if k != "EmailVerification"} for item in live]
    assert pending and all(h in exported_text for h in stored_hashes(kept))
    assert not any(h in exported_text for h in stored_hashes(pending))
    # Second factors: the export keeps a confirmed TOTP factor sealed (its key is not in the
    # file), and neither a pending enrollment nor any recovery code's hash; nothing in clear.
    factors = StoredFactors.of(live)
    assert factors.sealed and factors.pending_sealed and len(factors.recovery_hashes) == 11
    assert all(sealed in exported_text for sealed in factors.sealed)
    assert not [s for s in factors.pending_sealed | factors.recovery_hashes if s in exported_text]
    assert not [s for s in secrets.raw() if s in exported_text]
    assert not [s for s in secrets.raw() | factors.everything() if s in events_text]
    assert authorizations.values and all("Signature=" in v for v in authorizations.values)
    # The capture has teeth: DynamoDB bodies at DEBUG, the access lines, redactions made.
    assert any(
        e["logger"].startswith(("botocore", "aiobotocore")) and "Response body" in e["message"]
        for e in entries
    )
    assert sum(e["logger"] == "user_service.access" for e in entries) > 30
    groups = {
        "password or token": secrets.raw(),
        "hash": hashes,
        "Authorization": authorizations.secrets(),
        "signing key": signing_key_secrets(pem),
        "legacy HMAC key": {legacy_key.hex(), base64.b64encode(legacy_key).decode()},
        "second factor as stored": factors.everything(),
        # A challenge's hash: stored as 32 bytes, which DynamoDB's JSON holds in base64.
        "challenge hash": {
            form
            for digest in map(token_hash, secrets.challenge_tokens)
            for form in (digest, base64.b64encode(bytes.fromhex(digest)).decode())
        },
    }
    lines = log.getvalue().splitlines()
    leaks = {
        (json.loads(line)["logger"], kind)
        for line in lines
        for kind, group in groups.items()
        for secret in group
        if secret in line
    }
    assert not leaks, f"secrets in log lines: {sorted(leaks)}"
    codes = [re.compile(rf"(?i)code\D{{0,40}}\b{code}\b") for code in secrets.verification_codes]
    # The test's own SMTP server (aiosmtpd, logger "mail.log", in this process) logs the mail it
    # receives: the code is in the mail, by design. Only what the service logs counts here.
    service_lines = [line for line in lines if json.loads(line)["logger"] != "mail.log"]
    assert any(json.loads(line)["logger"] == "mail.log" for line in lines)  # the mail was seen
    assert not [line for line in service_lines for code in codes if code.search(line)], "a code"
    assert any(REDACTED in e["message"] for e in entries)  # they were there, and were redacted


async def test_no_stored_item_holds_a_password_or_token_only_their_hashes(
    service: Service,
) -> None:
    secrets = await run_every_flow(service)

    items = [
        *await service.scan(service.tables.users),
        *await service.scan(service.tables.emails),
        *await service.scan(service.tables.sessions),
    ]
    items += await service.scan(service.tables.events)
    assert any(item.get("Type", {}).get("S") == "RecoveryCodeUsed" for item in items)
    stored = "\n".join(json.dumps(item, default=str, sort_keys=True) for item in items)
    assert [secret for secret in secrets.raw() if secret in stored] == []
    # Recovery codes are there as hashes, TOTP secrets sealed: what a leak would land next to.
    factors = StoredFactors.of(items)
    assert len(factors.recovery_hashes) == 11 and factors.sealed and factors.pending_sealed
    assert [code for code in secrets.verification_codes if f'"{code}"' in stored] == []
    # The scan reads what a leak would land in: the hashes of the live tokens are there.
    assert all(digest in stored for digest in secrets.live_token_hashes)
    assert set(secrets.live_challenge_hashes) <= stored_binaries(items)


async def test_no_error_message_echoes_a_password_or_token(service: Service) -> None:
    secrets = await run_every_flow(service)

    assert len(secrets.errors) >= 10
    details = [error.details() or "" for error in secrets.errors]
    debug = [error.debug_error_string() or "" for error in secrets.errors]
    texts = details + debug
    assert [secret for secret in secrets.raw() for text in texts if secret in text] == []
    assert [code for code in secrets.verification_codes for text in texts if code in text] == []


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
    tables = TableNames(
        users=f"Users-{suffix}", emails=f"UserEmails-{suffix}", sessions=f"UserSessions-{suffix}"
    )
    entry = {"name": "tests", "sha256": api_key_sha256(key), "roles": ["admin"]}
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_DYNAMODB_ENDPOINT=moto_endpoint,
        USER_SERVICE_EMBEDDED_DYNAMODB="false",
        USER_SERVICE_TABLE_NAME=tables.users,
        USER_SERVICE_EMAIL_TABLE_NAME=tables.emails,
        USER_SERVICE_SESSIONS_TABLE_NAME=tables.sessions,
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
    tokens = [*secrets.refresh_tokens, *secrets.reset_tokens, *secrets.verification_tokens]
    hashes = [token_hash(token) for token in tokens]
    assert not [digest for digest in hashes if digest in log], "token hashes in the output"
    codes = [re.compile(rf"(?i)code\D{{0,40}}\b{code}\b") for code in secrets.verification_codes]
    assert not [code for code in codes if code.search(log) or code.search(errors)], "a code"
    # Password hashes and SigV4 headers, by their form: the bodies and requests are logged.
    assert "$argon2" not in log and "Credential=" not in log and "Signature=" not in log
    assert any("PasswordHash" in e["message"] for e in entries)
