"""Settings become the authentication parts: signing keys from text or file, or a loud dev key."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from server.crypto.access_token_verifier import AccessTokenVerifier
from server.crypto.access_tokens import SigningKeyError, generate_signing_keys, signing_key_pem
from server.from_settings import auth_policy, caller_auth, notifier, signing_keys
from server.mail.outbox import OutboxNotifier
from server.mail.smtp import SmtpNotifier
from server.refusals import CallerUnauthenticated
from server.settings import ApiKey, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def test_development_without_a_key_generates_one_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    keys = signing_keys(Settings())

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("generated one for this run" in w and keys.kid in w for w in warnings)
    assert all("PRIVATE KEY" not in record.getMessage() for record in caplog.records)


def test_a_configured_key_is_used_from_the_environment_or_a_file(tmp_path: Path) -> None:
    configured = generate_signing_keys()
    pem = signing_key_pem(configured)
    key_file = tmp_path / "jwt.pem"
    key_file.write_text(pem)

    from_text = signing_keys(Settings(jwt_signing_keys=SecretStr(pem)))
    from_file = signing_keys(Settings(jwt_signing_keys_file=key_file))

    assert from_text.kid == from_file.kid == configured.kid


def test_an_unreadable_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"

    with pytest.raises(SigningKeyError, match=r"absent\.pem"):
        signing_keys(Settings(jwt_signing_keys_file=missing))


def test_the_policy_follows_the_settings() -> None:
    policy = auth_policy(
        Settings(
            max_sessions_per_user=3,
            refresh_token_reuse_grace_seconds=2.5,
            lockout_max_failures=7,
            password_reset_lifetime_seconds=600,
        )
    )

    assert policy.sessions.max_sessions == 3
    assert policy.sessions.reuse_grace.total_seconds() == 2.5
    assert policy.lockout.max_failures == 7
    assert policy.password_reset_lifetime.total_seconds() == 600


def test_the_email_change_links_live_a_day_unless_set_within_five_minutes_and_a_week() -> None:
    assert auth_policy(Settings()).email_change_lifetime.total_seconds() == 86400
    changed = auth_policy(Settings(email_change_lifetime_seconds=3600))
    assert changed.email_change_lifetime.total_seconds() == 3600
    for outside in (299, 7 * 86400 + 1):
        with pytest.raises(ValidationError, match="email_change_lifetime_seconds"):
            Settings(email_change_lifetime_seconds=outside)


def test_the_verification_policy_follows_the_settings_and_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = auth_policy(
        Settings(email_verification_lifetime_seconds=3600, verification_code_max_attempts=3)
    )
    assert policy.verification.lifetime.total_seconds() == 3600
    assert policy.verification.max_code_attempts == 3
    assert not policy.verification.required_for_sign_in  # development
    assert auth_policy(Settings(require_verified_email=True)).verification.required_for_sign_in
    monkeypatch.setenv("USER_SERVICE_PROFILE", "production")
    assert auth_policy(Settings()).verification.required_for_sign_in
    monkeypatch.setenv("USER_SERVICE_REQUIRE_VERIFIED_EMAIL", "false")
    assert not auth_policy(Settings()).verification.required_for_sign_in


def test_reset_mail_goes_to_the_outbox_in_development_and_smtp_when_asked(
    tmp_path: Path,
) -> None:
    assert isinstance(notifier(Settings(outbox_dir=tmp_path)), OutboxNotifier)
    assert isinstance(notifier(Settings(notifier="smtp")), SmtpNotifier)


def test_callers_are_checked_only_when_keys_or_a_client_ca_are_configured() -> None:
    verifier = AccessTokenVerifier(
        generate_signing_keys(), issuer="i", audience="a", clock=lambda: datetime.now(UTC)
    )
    development = caller_auth(Settings(), verifier).identify([], {})
    assert development.roles == {"admin"}
    keyed = Settings(api_keys=[ApiKey(name="billing", sha256="ab" * 32, roles=())])
    with pytest.raises(CallerUnauthenticated):
        caller_auth(keyed, verifier).identify([], {})
