"""What each part of the service is, as the settings describe it: DynamoDB client options and
table names, the authentication policy, signing keys, the notifier, caller checks and TLS."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import grpc

from domain.policies import (
    AuthPolicy,
    LockoutPolicy,
    SecurityMailPolicy,
    SessionPolicy,
    SignInChallengePolicy,
    VerificationPolicy,
)
from domain.ports import Notifier, TotpCodes
from persistence.dynamodb_client import DynamoDbOptions
from persistence.schema import TableNames
from server.crypto.access_token_verifier import AccessTokenVerifier, TokenUser
from server.crypto.access_tokens import (
    SigningKeyError,
    SigningKeys,
    generate_signing_keys,
    load_signing_keys,
)
from server.crypto.tls import server_credentials, server_ssl_context
from server.crypto.totp_keys import SealedTotpCodes, TotpKeyError, TotpKeyRing
from server.crypto.webauthn_relying_party import PyWebAuthnRelyingParty
from server.interceptors.caller_auth import CallerAuthInterceptor
from server.legacy_auth import CircuitBreaker, HttpLegacyAuthenticator
from server.mail.compose import MailComposer
from server.mail.links import LinkTemplates
from server.mail.outbox import OutboxNotifier
from server.mail.smtp import SmtpNotifier
from server.mail.templates import MailTemplates
from server.operations.tracing import Tracing
from server.rpc_access import PUBLIC_SERVICES
from server.settings import Settings, legacy_auth_key_bytes

log = logging.getLogger(__name__)

# Any credentials satisfy a local DynamoDB (moto, DynamoDB Local, LocalStack); botocore wants some.
LOCAL_CREDENTIALS = ("local", "local")
_CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")


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
            max_delay=timedelta(seconds=settings.lockout_max_delay_seconds),
        ),
        password_reset_lifetime=timedelta(seconds=settings.password_reset_lifetime_seconds),
        security_mail=SecurityMailPolicy(
            cooldown=timedelta(seconds=settings.security_mail_cooldown_seconds),
            max_per_window=settings.security_mail_max_per_hour,
            window=timedelta(hours=1),
        ),
        email_change_lifetime=timedelta(seconds=settings.email_change_lifetime_seconds),
        verification=VerificationPolicy(
            lifetime=timedelta(seconds=settings.email_verification_lifetime_seconds),
            max_code_attempts=settings.verification_code_max_attempts,
            required_for_sign_in=settings.requires_verified_email,
        ),
        sign_in_challenges=SignInChallengePolicy(
            lifetime=timedelta(seconds=settings.sign_in_challenge_lifetime_seconds),
            max_wrong_codes=settings.sign_in_challenge_max_wrong_codes,
        ),
    )


def relying_party(settings: Settings) -> PyWebAuthnRelyingParty:
    """The WebAuthn relying party passkeys are registered with and signed in to."""
    return PyWebAuthnRelyingParty(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name or settings.product_name,
        origins=settings.webauthn_origins,
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


def totp_codes(settings: Settings) -> TotpCodes | None:
    """TOTP's codes and the key ring sealing its secrets; None while TOTP is off. In development
    without a key, a fresh key for this run (said loudly): the secrets it seals open in no other
    run, so whoever enrolled then must enroll again (or be reset) after a restart; set a key to
    keep them (docs/production.md)."""
    if not settings.totp_enabled:
        return None
    if settings.totp_encryption_keys is not None:
        keys = TotpKeyRing.parse(settings.totp_encryption_keys.get_secret_value())
    elif settings.is_production:  # the settings refuse this already; never seal with a throwaway
        raise TotpKeyError("production needs USER_SERVICE_TOTP_ENCRYPTION_KEYS while TOTP is on")
    else:
        keys = TotpKeyRing.generate("dev-" + os.urandom(4).hex())
        log.warning(
            "No TOTP encryption key configured: generated one for this run (id %s); TOTP "
            "secrets enrolled now will not open after a restart. Set "
            "USER_SERVICE_TOTP_ENCRYPTION_KEYS to keep them.",
            keys.sealing_id,
        )
    return SealedTotpCodes(keys, settings.totp_issuer_name)


def mail_composer(settings: Settings) -> MailComposer:
    """What writes security mail: the templates (loaded and tried out now, so that a broken
    replacement stops the start), the links of each kind, the sender and the product name."""
    templates = MailTemplates(settings.mail_templates_dir)
    if settings.mail_templates_dir is not None:
        log.info("Mail templates from %s: %r", settings.mail_templates_dir, templates)
    return MailComposer(
        sender=settings.smtp_sender,
        product=settings.product_name,
        links=LinkTemplates(
            password_reset=settings.password_reset_link_template,
            email_verification=settings.email_verification_link_template,
            email_change=settings.email_change_link_template,
            email_change_cancel=settings.email_change_cancel_link_template,
        ),
        templates=templates,
    )


def notifier(settings: Settings) -> Notifier:
    """Where security mail goes: the outbox folder or the SMTP server."""
    composer = mail_composer(settings)
    if settings.notifier_kind == "outbox":
        log.info("Security mail is written to the outbox folder %s", settings.outbox_dir)
        return OutboxNotifier(directory=settings.outbox_dir, composer=composer)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpNotifier(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=password,
        composer=composer,
        timeout=settings.smtp_timeout_seconds,
    )


def caller_auth(
    settings: Settings,
    user_tokens: AccessTokenVerifier,
    session_in_force: Callable[[TokenUser], Awaitable[bool]] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> CallerAuthInterceptor:
    """The interceptor that checks API keys, client certificates and user tokens. With neither
    keys nor a client CA (development) every caller is an admin, but user tokens are verified."""
    return CallerAuthInterceptor(
        api_keys=settings.api_keys,
        client_cert_roles=settings.client_cert_roles,
        client_certs_required=settings.tls_client_ca_file is not None,
        public_services=PUBLIC_SERVICES if settings.public_health_and_reflection else (),
        user_tokens=user_tokens,
        session_in_force=session_in_force,
        recent_sign_in_seconds=settings.recent_sign_in_seconds,
        clock=clock or (lambda: datetime.now(UTC)),
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


def http_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTP listener's TLS: the gRPC port's certificate, no client certificate asked."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return server_ssl_context(cert_file=settings.tls_cert_file, key_file=settings.tls_key_file)


def table_names(settings: Settings) -> TableNames:
    return TableNames(
        users=settings.table_name,
        emails=settings.email_table_name,
        events=settings.events_table_name,
        sessions=settings.sessions_table_name,
    )


def dynamodb_options(settings: Settings, endpoint_url: str | None) -> DynamoDbOptions:
    """Client options for ``endpoint_url`` (None: AWS itself).

    In development, a local endpoint gets dummy credentials unless the environment names some;
    otherwise botocore's usual credential chain applies (environment, profile, container, role).
    """
    access_key_id = secret_access_key = None
    if (
        not settings.is_production
        and endpoint_url is not None
        and not any(os.environ.get(name) for name in _CREDENTIAL_ENV_VARS)
    ):
        access_key_id, secret_access_key = LOCAL_CREDENTIALS
    return DynamoDbOptions(
        region=settings.aws_region,
        endpoint_url=endpoint_url,
        connect_timeout=settings.dynamodb_connect_timeout,
        read_timeout=settings.dynamodb_read_timeout,
        max_attempts=settings.dynamodb_max_attempts,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )


def legacy_authenticator(
    settings: Settings, tracing: Tracing | None = None
) -> HttpLegacyAuthenticator | None:
    """The lazy-migration hook; None while USER_SERVICE_LEGACY_AUTH_URL is unset. With
    ``tracing``, its requests are spans and carry their traceparent."""
    if settings.legacy_auth_url is None or settings.legacy_auth_hmac_key is None:
        return None
    return HttpLegacyAuthenticator(
        settings.legacy_auth_url,
        legacy_auth_key_bytes(settings.legacy_auth_hmac_key),
        timeout_seconds=settings.legacy_auth_timeout_seconds,
        breaker=CircuitBreaker(
            settings.legacy_auth_breaker_failures, settings.legacy_auth_breaker_cooldown_seconds
        ),
        tracing=None if tracing is None else (tracing.tracer, tracing.propagator),
    )
