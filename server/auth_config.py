"""Settings turned into the authentication parts: policy, keys, notifier, caller checks, TLS."""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from domain.policies import AuthPolicy, LockoutPolicy, SessionPolicy
from domain.ports import Notifier
from server.access_tokens import (
    SigningKeyError,
    SigningKeys,
    generate_signing_keys,
    load_signing_keys,
)
from server.caller_auth import CallerAuthInterceptor
from server.outbox_notifier import OutboxNotifier
from server.settings import Settings
from server.smtp_notifier import SmtpNotifier
from server.tls import server_credentials

log = logging.getLogger(__name__)


def auth_policy(settings: Settings) -> AuthPolicy:
    return AuthPolicy(
        sessions=SessionPolicy(
            max_sessions=settings.max_sessions_per_user,
            absolute_lifetime=timedelta(seconds=settings.session_absolute_lifetime_seconds),
            idle_lifetime=timedelta(seconds=settings.session_idle_lifetime_seconds),
            reuse_grace=timedelta(seconds=settings.refresh_token_reuse_grace_seconds),
        ),
        lockout=LockoutPolicy(
            max_failures=settings.lockout_max_failures,
            window=timedelta(seconds=settings.lockout_window_seconds),
            duration=timedelta(seconds=settings.lockout_duration_seconds),
        ),
        password_reset_lifetime=timedelta(seconds=settings.password_reset_lifetime_seconds),
    )


def signing_keys(settings: Settings) -> SigningKeys:
    """The configured JWT signing keys; in development without any, a fresh key (said loudly)."""
    if settings.jwt_signing_keys is not None:
        return load_signing_keys(settings.jwt_signing_keys.get_secret_value())
    if settings.jwt_signing_keys_file is not None:
        try:
            text = settings.jwt_signing_keys_file.read_text()
        except OSError as error:
            raise SigningKeyError(
                f"cannot read USER_SERVICE_JWT_SIGNING_KEYS_FILE {settings.jwt_signing_keys_file}: "
                f"{error.strerror}"
            ) from None
        return load_signing_keys(text)
    if settings.is_production:  # the settings refuse this already; never sign with a throwaway key
        raise SigningKeyError("production needs a configured JWT signing key")
    keys = generate_signing_keys()
    log.warning(
        "No JWT signing key configured: generated one for this run (kid %s); access tokens "
        "will not verify after a restart. Set USER_SERVICE_JWT_SIGNING_KEYS_FILE to keep one.",
        keys.kid,
    )
    return keys


def notifier(settings: Settings) -> Notifier:
    """Where password-reset mail goes: the outbox folder or the SMTP server."""
    if settings.notifier_kind == "outbox":
        log.info("Password-reset mail is written to the outbox folder %s", settings.outbox_dir)
        return OutboxNotifier(
            directory=settings.outbox_dir,
            sender=settings.smtp_sender,
            link_template=settings.password_reset_link_template,
        )
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpNotifier(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=password,
        sender=settings.smtp_sender,
        link_template=settings.password_reset_link_template,
        timeout=settings.smtp_timeout_seconds,
    )


def caller_auth(settings: Settings) -> CallerAuthInterceptor | None:
    """The interceptor that checks API keys and client certificates; None when none are set."""
    if not settings.authenticates_callers:
        return None
    public = (health.SERVICE_NAME, reflection.SERVICE_NAME)
    return CallerAuthInterceptor(
        api_keys=settings.api_keys,
        client_cert_roles=settings.client_cert_roles,
        client_certs_required=settings.tls_client_ca_file is not None,
        public_services=public if settings.public_health_and_reflection else (),
    )


def tls_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Server TLS (mutual when a client CA is set); None for plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return server_credentials(
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        client_ca_file=settings.tls_client_ca_file,
    )
