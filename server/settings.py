"""The service's configuration, from USER_SERVICE_* (and standard AWS_*) environment variables."""

from __future__ import annotations

import base64
import binascii
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.event_cursors import STREAM_SHARDS
from persistence.deadline import EVENT_COMMIT_WINDOW_SECONDS
from server.crypto.legacy_hashes import HashFormat, parse_accepted_formats
from server.crypto.totp_keys import TotpKeyRing
from server.crypto.webauthn_settings import check_origins, check_rp_id, parse_origins
from server.mail.links import check_link_template
from server.operations.cpus import usable_cpus
from server.roles import check_roles

ENV_PREFIX = "USER_SERVICE_"
MAX_ACCESS_TOKEN_LIFETIME_SECONDS = 3600

# OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB, t=2, p=1 is the weakest acceptable.
ARGON2_MIN_MEMORY_KIB = 19456
ARGON2_MIN_TIME_COST = 2
ARGON2_MIN_PARALLELISM = 1
_ARGON2_MINIMUMS = {
    "argon2_time_cost": ARGON2_MIN_TIME_COST,
    "argon2_memory_kib": ARGON2_MIN_MEMORY_KIB,
    "argon2_parallelism": ARGON2_MIN_PARALLELISM,
}


# Each link template of security mail, and the page it leads to.
LINK_TEMPLATE_FIELDS = {
    "password_reset_link_template": "the reset page",
    "email_verification_link_template": "the page that verifies an address",
    "email_change_link_template": "the page that confirms an email change",
    "email_change_cancel_link_template": "the page that cancels an email change",
}


class ApiKey(BaseModel):
    """One caller's API key, as its SHA-256 (hex) and the roles it grants; never the key itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: tuple[str, ...] = ()

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        check_roles(value)
        return value


class Settings(BaseSettings):
    """Everything the service can be told at start-up; derived defaults depend on ``profile``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, validate_by_name=True, extra="ignore"
    )

    profile: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=1, le=65535)
    dynamodb_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "USER_SERVICE_DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"
        ),
    )
    aws_region: str = Field(
        default="us-east-1",
        min_length=1,
        validation_alias=AliasChoices(
            "USER_SERVICE_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"
        ),
    )
    table_name: str = Field(default="Users", min_length=3, max_length=255)
    email_table_name: str = Field(default="UserEmails", min_length=3, max_length=255)
    events_table_name: str = Field(default="UserEvents", min_length=3, max_length=255)
    sessions_table_name: str = Field(default="UserSessions", min_length=3, max_length=255)
    events_retention_days: int = Field(default=30, ge=1)
    # Shards of a day in the EventStream index that writers spread events over (by user); 1 is
    # the layout before shards. Readers always read STREAM_SHARDS, so this may change any time.
    events_stream_shards: int = Field(default=STREAM_SHARDS, ge=1, le=STREAM_SHARDS)
    ensure_tables_created: bool | None = None
    embedded_dynamodb: bool | None = None
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    # After this long a client's connection is sent GOAWAY (its calls under way finish, its next
    # calls open a new connection): a ClusterIP Service balances connections, not calls, so
    # without it replicas added by scaling would get nothing from the callers already connected.
    max_connection_age_seconds: float = Field(default=300.0, ge=1, le=86_400)
    dynamodb_connect_timeout: float = Field(default=2.0, gt=0)
    dynamodb_read_timeout: float = Field(default=5.0, gt=0)
    dynamodb_max_attempts: int = Field(default=3, ge=1)
    argon2_time_cost: int = ARGON2_MIN_TIME_COST
    argon2_memory_kib: int = ARGON2_MIN_MEMORY_KIB
    argon2_parallelism: int = ARGON2_MIN_PARALLELISM
    password_hash_workers: int = Field(default_factory=usable_cpus, ge=1)
    # Password hash formats a stored hash may be in (comma-separated HashFormat values: hashes
    # brought over from the old system); a hash in any other format never matches.
    legacy_hash_formats: Annotated[frozenset[HashFormat], NoDecode] = frozenset(HashFormat)
    page_token_secret: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] | None = None
    # "botocore=DEBUG,user_service.access=WARNING": a comma-separated list, not JSON.
    log_levels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    health_check_interval_seconds: float = Field(default=2.0, gt=0)

    # Sessions and refresh tokens.
    max_sessions_per_user: int = Field(default=10, ge=1, le=50)
    session_absolute_lifetime_seconds: int = Field(default=30 * 86400, ge=60)
    session_idle_lifetime_seconds: int = Field(default=7 * 86400, ge=60)
    refresh_token_reuse_grace_seconds: float = Field(default=10.0, ge=0, le=300)

    # Access tokens (Ed25519-signed JWTs). A verifier cannot learn that a session ended before
    # its token expires (Logout, DisableUser): the lifetime bounds that window, hence at most 1 h.
    access_token_lifetime_seconds: int = Field(
        default=900, ge=60, le=MAX_ACCESS_TOKEN_LIFETIME_SECONDS
    )
    # Adding or removing a second factor, or requesting an email change, on a user's own token
    # needs a sign-in this recent (the token's auth_time): a refreshed token keeps its sign-in's.
    recent_sign_in_seconds: int = Field(default=900, ge=60, le=86400)
    jwt_issuer: str = Field(default="urn:biome:user-service", min_length=1)
    jwt_audience: str = Field(default="urn:biome:services", min_length=1)
    jwt_signing_keys: SecretStr | None = None
    jwt_signing_keys_file: Path | None = None

    # Lock-out: growing delays after failed sign-ins in a row (domain.policies.LockoutPolicy).
    lockout_max_failures: int = Field(default=5, ge=1, le=100)
    lockout_max_delay_seconds: int = Field(default=900, ge=1, le=86400)

    # Password reset and its mail.
    password_reset_lifetime_seconds: int = Field(default=3600, ge=60, le=86400)
    password_reset_link_template: str = "http://localhost:8080/reset-password?token={token}"
    # The other links of security mail, and what every mail says (server.mail).
    email_verification_link_template: str = "http://localhost:8080/verify-email?token={token}"
    email_change_link_template: str = "http://localhost:8080/confirm-email-change?token={token}"
    email_change_cancel_link_template: str = (
        "http://localhost:8080/cancel-email-change?token={token}"
    )
    product_name: str = Field(default="Biome", min_length=1, max_length=100)
    mail_templates_dir: Path | None = None
    # Email change: how long its confirm and cancel links work.
    email_change_lifetime_seconds: int = Field(default=86400, ge=300, le=7 * 86400)
    notifier: Literal["outbox", "smtp"] | None = None
    outbox_dir: Path = Path("outbox")
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "Biome <no-reply@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)

    # Email verification: its mail's link and code, and whether sign-in needs a verified address
    # (by default in production only).
    email_verification_lifetime_seconds: int = Field(default=86400, ge=300, le=7 * 86400)
    verification_code_max_attempts: int = Field(default=5, ge=1, le=10)
    require_verified_email: bool | None = None

    # Second factors: TOTP, its issuer as authenticator apps show it (default: the product name),
    # and the AES-256-GCM keys that seal its secrets ("id:base64key", comma-separated; the first
    # seals, all unseal; production refuses to start without one while TOTP is on).
    totp_enabled: bool = True
    totp_issuer: str | None = Field(default=None, min_length=1, max_length=100)
    totp_encryption_keys: SecretStr | None = None
    # Passkeys (WebAuthn): the relying party's id (the registrable domain passkeys are bound to),
    # the name authenticators show (empty: the product name), and the origins whose pages run the
    # ceremonies (comma-separated; https in production, but for localhost).
    webauthn_rp_id: str = "localhost"
    webauthn_rp_name: str | None = Field(default=None, max_length=100)
    webauthn_origins: Annotated[tuple[str, ...], NoDecode] = ("http://localhost:8080",)

    # Sign-in with a second factor: how long Authenticate's challenge waits for CompleteSignIn,
    # and how many wrong codes it survives.
    sign_in_challenge_lifetime_seconds: int = Field(default=300, ge=30, le=3600)
    sign_in_challenge_max_wrong_codes: int = Field(default=3, ge=1, le=10)

    # Caller authentication (internal services).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    allow_plaintext: bool = False
    api_keys: list[ApiKey] = Field(default_factory=list)
    client_cert_roles: dict[str, list[str]] = Field(default_factory=dict)
    public_health_and_reflection: bool = True
    health_port: int | None = Field(default=None, ge=1, le=65535)

    # Prometheus metrics over HTTP, off unless a port is set.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str | None = None

    # The HTTP listener (server.http): JWKS, OpenID discovery, probes, metrics; off unless a port
    # is set. Its public URL is what callers reach it at (the discovery document's jwks_uri).
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str | None = None
    http_public_url: str | None = None

    # WatchEvents: how its streams follow the events table (see server.event_stream).
    events_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    events_settle_seconds: float = Field(default=5.0, le=600)
    events_lookback_seconds: float = Field(default=60.0, ge=0, le=3600)
    max_event_watchers: int = Field(default=32, ge=1, le=10_000)

    # Abuse limits: security mail per address (kept on the user item, so every replica sees
    # them), work after the reply, and overload refusals (RESOURCE_EXHAUSTED with RetryInfo).
    security_mail_cooldown_seconds: int = Field(default=60, ge=0, le=3600)
    security_mail_max_per_hour: int = Field(default=5, ge=1, le=100)
    max_background_jobs: int = Field(default=256, ge=1, le=100_000)
    max_concurrent_rpcs: int = Field(default=256, ge=1, le=100_000)
    password_hash_max_waiting: int = Field(default=128, ge=0, le=100_000)

    # Lazy migration (README, "Lazy migration"): the old system's password check, asked at
    # sign-in for an unknown email; off unless the URL is set. Its HMAC key is base64 (at least
    # 32 bytes in production, where the URL must be https); after the breaker's failures in a
    # row the hook is skipped for its cool-down.
    legacy_auth_url: str | None = None
    legacy_auth_hmac_key: SecretStr | None = None
    legacy_auth_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    legacy_auth_breaker_failures: int = Field(default=5, ge=1, le=1000)
    legacy_auth_breaker_cooldown_seconds: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("dynamodb_endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as http://localhost:8000")
        return value

    @field_validator("legacy_auth_url")
    @classmethod
    def _legacy_auth_url_is_http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as https://old.example/auth")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials: the requests are signed with the key")
        return value

    @field_validator("http_public_url")
    @classmethod
    def _public_url_is_a_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL such as https://users.example")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must be a base URL: no credentials, query or fragment")
        return value.rstrip("/")

    @field_validator("legacy_auth_hmac_key")
    @classmethod
    def _legacy_auth_key_is_base64(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            legacy_auth_key_bytes(value)  # its message names no key material
        return value

    @model_validator(mode="after")
    def _legacy_auth_url_needs_a_key(self) -> Settings:
        if self.legacy_auth_url is not None and self.legacy_auth_hmac_key is None:
            raise ValueError(
                "USER_SERVICE_LEGACY_AUTH_URL needs USER_SERVICE_LEGACY_AUTH_HMAC_KEY "
                "(base64) to sign its requests"
            )
        return self

    @field_validator("webauthn_rp_id")
    @classmethod
    def _rp_id_is_a_host(cls, value: str) -> str:
        return check_rp_id(value)

    @field_validator("legacy_hash_formats", mode="before")
    @classmethod
    def _formats_are_listed(cls, value: object) -> object:
        return parse_accepted_formats(value) if isinstance(value, str) else value

    @field_validator("webauthn_origins", mode="before")
    @classmethod
    def _origins_are_listed(cls, value: object) -> object:
        return parse_origins(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _origins_belong_to_the_rp_id(self) -> Settings:
        check_origins(self.webauthn_origins, self.webauthn_rp_id, production=self.is_production)
        return self

    @field_validator("client_cert_roles")
    @classmethod
    def _known_client_cert_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for roles in value.values():
            check_roles(roles)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_levels", mode="before")
    @classmethod
    def _logger_levels(cls, value: object) -> object:
        return parse_logger_levels(value) if isinstance(value, (str, dict)) else value

    @field_validator("events_settle_seconds")
    @classmethod
    def _settle_outlasts_commit_window(cls, value: float) -> float:
        # An event may be committed up to the commit window after its RecordedAt; a stream that
        # read sooner could move past it before it shows.
        if value <= EVENT_COMMIT_WINDOW_SECONDS:
            raise ValueError(
                f"must exceed {EVENT_COMMIT_WINDOW_SECONDS} s, the most a commit may lag behind "
                "its events' recording time"
            )
        return value

    @field_validator("argon2_time_cost", "argon2_memory_kib", "argon2_parallelism")
    @classmethod
    def _argon2_meets_owasp(cls, value: int, info: ValidationInfo) -> int:
        minimum = _ARGON2_MINIMUMS[str(info.field_name)]
        if value < minimum:
            raise ValueError(f"must be at least {minimum} (OWASP minimum for argon2id)")
        return value

    @field_validator("smtp_password")
    @classmethod
    def _smtp_password_without_edge_whitespace(cls, value: SecretStr | None) -> SecretStr | None:
        # A Secret made with `kubectl create secret --from-file` keeps the file's final newline;
        # sent as part of the password, it fails every login to the relay. Empty is none.
        if value is None:
            return None
        stripped = value.get_secret_value().strip()
        return SecretStr(stripped) if stripped else None

    @field_validator("page_token_secret")
    @classmethod
    def _secret_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes long")
        return value

    @field_validator("embedded_dynamodb")
    @classmethod
    def _embedded_only_in_development(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value and info.data.get("profile") == "production":
            raise ValueError(
                "the embedded in-memory DynamoDB is for development only; "
                "set it to false in production"
            )
        return value

    @field_validator(*LINK_TEMPLATE_FIELDS)
    @classmethod
    def _link_has_token_placeholder(cls, value: str) -> str:
        return check_link_template(value)

    @field_validator("product_name")
    @classmethod
    def _product_name_is_one_line_of_text(cls, value: str) -> str:
        # It heads every mail and sits in the plain-text part unescaped.
        odd = any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in value)
        if odd or value != value.strip():
            raise ValueError("must be one line of text without control characters or edge spaces")
        return value

    @field_validator("totp_encryption_keys")
    @classmethod
    def _totp_keys_parse(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            TotpKeyRing.parse(value.get_secret_value())  # TotpKeyError names no key material
        return value

    @field_validator("totp_issuer")
    @classmethod
    def _totp_issuer_has_no_colon(cls, value: str | None) -> str | None:
        # otpauth://totp/<issuer>:<account>: apps split the label at the colon.
        if value is not None and (":" in value or not value.isprintable()):
            raise ValueError("must be printable text without a colon")
        return value

    @model_validator(mode="after")
    def _listen_on_all_interfaces_in_production(self) -> Settings:
        if "host" not in self.model_fields_set and self.profile == "production":
            self.host = "0.0.0.0"
        return self

    @model_validator(mode="after")
    def _tls_files_come_in_pairs(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("USER_SERVICE_TLS_CERT_FILE and USER_SERVICE_TLS_KEY_FILE go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("USER_SERVICE_TLS_CLIENT_CA_FILE needs USER_SERVICE_TLS_CERT_FILE")
        return self

    @model_validator(mode="after")
    def _health_port_is_another_port(self) -> Settings:
        if self.health_port is not None and self.health_port == self.port:
            raise ValueError("USER_SERVICE_HEALTH_PORT must differ from USER_SERVICE_PORT")
        return self

    @model_validator(mode="after")
    def _metrics_port_is_another_port(self) -> Settings:
        if self.metrics_port is not None and self.metrics_port in {self.port, self.health_port}:
            raise ValueError(
                "USER_SERVICE_METRICS_PORT must differ from USER_SERVICE_PORT "
                "and USER_SERVICE_HEALTH_PORT"
            )
        return self

    @model_validator(mode="after")
    def _http_port_is_another_port(self) -> Settings:
        taken = {self.port, self.health_port, self.metrics_port}
        if self.http_port and self.http_port in taken:  # 0, any free port, collides with nothing
            raise ValueError(
                "USER_SERVICE_HTTP_PORT must differ from USER_SERVICE_PORT, "
                "USER_SERVICE_HEALTH_PORT and USER_SERVICE_METRICS_PORT"
            )
        return self

    def unmet_serving_requirement(self) -> str | None:
        """What serving in production still lacks (TLS, caller authentication, a signing key).

        Only ``serve`` needs these; ``init-tables`` and ``health`` run without them, so a deploy
        job can create the tables with the production image and no serving secrets.
        """
        if not self.is_production:
            return None
        if self.tls_cert_file is None and not self.allow_plaintext:
            return (
                "production needs USER_SERVICE_TLS_CERT_FILE and USER_SERVICE_TLS_KEY_FILE "
                "(or USER_SERVICE_ALLOW_PLAINTEXT=true behind a TLS-terminating proxy)"
            )
        if not self.api_keys and self.tls_client_ca_file is None:
            return (
                "production needs USER_SERVICE_API_KEYS or USER_SERVICE_TLS_CLIENT_CA_FILE "
                "to authenticate callers"
            )
        if self.jwt_signing_keys is None and self.jwt_signing_keys_file is None:
            return (
                "production needs USER_SERVICE_JWT_SIGNING_KEYS "
                "or USER_SERVICE_JWT_SIGNING_KEYS_FILE"
            )
        if self.totp_enabled and self.totp_encryption_keys is None:
            return (
                "production needs USER_SERVICE_TOTP_ENCRYPTION_KEYS while TOTP is on "
                "(or USER_SERVICE_TOTP_ENABLED=false)"
            )
        return (
            self._unsafe_http_listener_in_production()
            or self._unsafe_mail_in_production()
            or self._unsafe_legacy_auth_in_production()
        )

    def _unsafe_http_listener_in_production(self) -> str | None:
        """Why the HTTP listener's settings are unsafe in production (checked only when serving).

        The listener speaks TLS when the gRPC port does, and plaintext only where the gRPC port
        may (USER_SERVICE_ALLOW_PLAINTEXT, behind a TLS-terminating proxy). Verifiers trust
        whatever keys the discovery document's jwks_uri serves, so that URL must be https and
        name the host callers really reach (the listener's own 0.0.0.0 names none).
        """
        if self.http_port is None:
            return None
        if self.http_public_url is None or urlsplit(self.http_public_url).scheme != "https":
            return (
                "production needs USER_SERVICE_HTTP_PUBLIC_URL, the https:// URL callers reach "
                "the HTTP listener at (verifiers fetch the signing keys from it)"
            )
        return None

    def _unsafe_legacy_auth_in_production(self) -> str | None:
        """Why the lazy-migration hook is unsafe in production (checked only when serving)."""
        if self.legacy_auth_url is None or self.legacy_auth_hmac_key is None:
            return None
        if urlsplit(self.legacy_auth_url).scheme != "https":
            return (
                "production needs an https:// USER_SERVICE_LEGACY_AUTH_URL: "
                "its requests carry passwords"
            )
        if len(legacy_auth_key_bytes(self.legacy_auth_hmac_key)) < LEGACY_AUTH_MIN_KEY_BYTES:
            return (
                f"production needs a USER_SERVICE_LEGACY_AUTH_HMAC_KEY of at least "
                f"{LEGACY_AUTH_MIN_KEY_BYTES} bytes (before base64)"
            )
        return None

    # --- production refusals of mail settings (issue 13) ---------------------------------------

    def _unsafe_mail_in_production(self) -> str | None:
        """Why the mail settings are unsafe in production (checked only when serving)."""
        for field, page in LINK_TEMPLATE_FIELDS.items():
            variable = f"{ENV_PREFIX}{field.upper()}"
            if field not in self.model_fields_set:
                return (
                    f"production needs {variable}, an https:// link to {page} "
                    "(the default points at http://localhost)"
                )
            if urlsplit(getattr(self, field)).scheme != "https":
                return f"production needs an https:// {variable}: the link carries a live token"
        if self.notifier_kind == "outbox":
            return (
                "USER_SERVICE_NOTIFIER=outbox is for development: it writes live reset tokens "
                "to disk; production sends mail with smtp"
            )
        if self.smtp_security == "none" and self.smtp_password is not None:
            return (
                "USER_SERVICE_SMTP_SECURITY=none would send USER_SERVICE_SMTP_PASSWORD in "
                "clear; use starttls or tls"
            )
        return None

    @property
    def totp_issuer_name(self) -> str:
        """The issuer authenticator apps show: by default the product name."""
        return self.totp_issuer if self.totp_issuer is not None else self.product_name

    @property
    def is_production(self) -> bool:
        return self.profile == "production"

    @property
    def creates_tables(self) -> bool:
        """Whether start-up creates missing tables: by default only in development."""
        if self.ensure_tables_created is None:
            return not self.is_production
        return self.ensure_tables_created

    @property
    def requires_verified_email(self) -> bool:
        """Whether sign-in needs a verified address: by default in production, not in development
        (where the mail lands in the outbox folder)."""
        if self.require_verified_email is None:
            return self.is_production
        return self.require_verified_email

    @property
    def notifier_kind(self) -> Literal["outbox", "smtp"]:
        """Where reset mail goes: by default an outbox folder in development, SMTP in production."""
        if self.notifier is None:
            return "smtp" if self.is_production else "outbox"
        return self.notifier

    @property
    def log_format_kind(self) -> Literal["json", "text"]:
        """How log lines look: by default JSON in production, readable text in development."""
        if self.log_format is None:
            return "json" if self.is_production else "text"
        return self.log_format

    @property
    def metrics_address(self) -> str:
        """The interface the metrics endpoint listens on: by default the service's own host."""
        return self.host if self.metrics_host is None else self.metrics_host

    @property
    def http_address(self) -> str:
        """The interface the HTTP listener listens on: by default the service's own host."""
        return self.host if self.http_host is None else self.http_host

    @property
    def authenticates_callers(self) -> bool:
        """Whether callers must present an API key or a client certificate."""
        return bool(self.api_keys) or self.tls_client_ca_file is not None

    @property
    def uses_embedded_dynamodb(self) -> bool:
        """Whether to start an in-memory DynamoDB: by default in development without an endpoint."""
        if self.embedded_dynamodb is None:
            return not self.is_production and self.dynamodb_endpoint is None
        return self.embedded_dynamodb


LEGACY_AUTH_MIN_KEY_BYTES = 32


def legacy_auth_key_bytes(value: SecretStr) -> bytes:
    """The lazy-migration hook's HMAC key, decoded from base64 (ValueError naming no key)."""
    try:
        key = base64.b64decode(value.get_secret_value().strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64 (e.g. from: openssl rand -base64 32)") from None
    if not key:
        raise ValueError("must not be empty")
    return key


_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOGGER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_logger_levels(value: str | dict[str, object]) -> dict[str, str]:
    """``"botocore=DEBUG, user_service.access=warning"`` (or such a dict) -> {name: LEVEL}."""
    if isinstance(value, str):
        pairs: list[tuple[str, object]] = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, equals, level = item.partition("=")
            if not equals:
                raise ValueError(
                    f"{item!r} is not logger=LEVEL; expected a comma-separated list such as "
                    "botocore=DEBUG,user_service.access=WARNING"
                )
            pairs.append((name.strip(), level.strip()))
    else:
        pairs = list(value.items())
    levels: dict[str, str] = {}
    for logger, wanted in pairs:
        if not _LOGGER_NAME.fullmatch(logger):
            raise ValueError(f"{logger!r} is not a logger name such as botocore or server.status")
        if not isinstance(wanted, str) or wanted.upper() not in _LEVEL_NAMES:
            raise ValueError(f"the level of {logger} must be one of {', '.join(_LEVEL_NAMES)}")
        levels[logger] = wanted.upper()
    return levels


def describe_invalid_settings(error: ValidationError) -> str:
    """One line naming the environment variable of the first invalid setting and its problem."""
    first = error.errors()[0]
    key = str(first["loc"][0]) if first["loc"] else ""
    message = first["msg"].removeprefix("Value error, ")
    if not key:  # a rule over several settings; its message names them
        return f"invalid settings: {message}"
    return f"invalid setting {_env_var_name(key)}: {message}"


def _env_var_name(key: str) -> str:
    """The environment variable a setting came from: for aliased settings, the first one set."""
    field = next(
        (name for name, info in Settings.model_fields.items() if key in (name, *_aliases(info))),
        None,
    )
    if field is None:
        return key.upper()
    aliases = _aliases(Settings.model_fields[field])
    if not aliases:
        return ENV_PREFIX + field.upper()
    environment = {name.upper() for name, value in os.environ.items() if value}
    return next((alias for alias in aliases if alias.upper() in environment), aliases[0])


def _aliases(info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    return [alias] if isinstance(alias, str) else []
