"""Settings: defaults by profile, AWS variable aliases, and refusals that name their variable."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from server.from_settings import dynamodb_options
from server.settings import Settings, describe_invalid_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(
            ("USER_SERVICE_", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
        ):
            monkeypatch.delenv(name)


HTTPS_RESET_LINK = "https://accounts.example.com/reset-password?token={token}"
HTTPS_MAIL_LINKS = {
    "USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE": HTTPS_RESET_LINK,
    "USER_SERVICE_EMAIL_VERIFICATION_LINK_TEMPLATE": (
        "https://accounts.example.com/verify-email?token={token}"
    ),
    "USER_SERVICE_EMAIL_CHANGE_LINK_TEMPLATE": (
        "https://accounts.example.com/confirm-email-change?token={token}"
    ),
    "USER_SERVICE_EMAIL_CHANGE_CANCEL_LINK_TEMPLATE": (
        "https://accounts.example.com/cancel-email-change?token={token}"
    ),
}
TOTP_KEYS = "2026-12:" + "A" * 43 + "="  # 32 zero bytes
API_KEY_ENTRY = '[{"name": "billing", "sha256": "' + "ab" * 32 + '", "roles": ["admin"]}]'


def production(monkeypatch: pytest.MonkeyPatch, **overrides: str) -> None:
    """A production environment that passes every start-up check, with ``overrides`` applied."""
    variables = {
        "USER_SERVICE_PROFILE": "production",
        "USER_SERVICE_ALLOW_PLAINTEXT": "true",
        "USER_SERVICE_API_KEYS": API_KEY_ENTRY,
        "USER_SERVICE_JWT_SIGNING_KEYS_FILE": "/run/secrets/jwt-signing-keys.pem",
        "USER_SERVICE_TOTP_ENCRYPTION_KEYS": TOTP_KEYS,
        **HTTPS_MAIL_LINKS,
    }
    variables.update(overrides)
    for name, value in variables.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


def refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    return describe_invalid_settings(raised.value)


def test_development_defaults_serve_on_loopback_with_embedded_dynamodb_and_table_creation() -> None:
    settings = Settings()

    assert (settings.host, settings.port, settings.aws_region) == ("127.0.0.1", 50051, "us-east-1")
    assert settings.uses_embedded_dynamodb and settings.creates_tables


def test_production_defaults_listen_on_all_interfaces_and_create_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch)

    settings = Settings()

    assert settings.host == "0.0.0.0"
    assert not settings.uses_embedded_dynamodb and not settings.creates_tables


def test_a_configured_endpoint_turns_the_embedded_dynamodb_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://localhost:4566")

    settings = Settings()

    assert settings.dynamodb_endpoint == "http://localhost:4566"
    assert not settings.uses_embedded_dynamodb and settings.creates_tables


def test_the_service_endpoint_variable_wins_over_the_aws_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://dynamodb:2")
    assert Settings().dynamodb_endpoint == "http://dynamodb:2"

    monkeypatch.setenv("USER_SERVICE_DYNAMODB_ENDPOINT", "http://service:3")
    assert Settings().dynamodb_endpoint == "http://service:3"


def test_the_region_comes_from_the_first_variable_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert Settings().aws_region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert Settings().aws_region == "eu-central-1"
    monkeypatch.setenv("USER_SERVICE_AWS_REGION", "ap-south-1")
    assert Settings().aws_region == "ap-south-1"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"USER_SERVICE_PORT": "notaport"},
            "invalid setting USER_SERVICE_PORT: Input should be a valid integer",
        ),
        (
            {"USER_SERVICE_PORT": "70000"},
            "invalid setting USER_SERVICE_PORT: Input should be less than",
        ),
        (
            {"AWS_ENDPOINT_URL_DYNAMODB": "localhost:8000"},
            "invalid setting AWS_ENDPOINT_URL_DYNAMODB: must be",
        ),
        (
            {"USER_SERVICE_ARGON2_MEMORY_KIB": "4096"},
            "invalid setting USER_SERVICE_ARGON2_MEMORY_KIB: must be at least 19456",
        ),
        (
            {"USER_SERVICE_ARGON2_TIME_COST": "1"},
            "invalid setting USER_SERVICE_ARGON2_TIME_COST: must be at least 2",
        ),
        (
            {"USER_SERVICE_ARGON2_PARALLELISM": "0"},
            "invalid setting USER_SERVICE_ARGON2_PARALLELISM: must be at least 1",
        ),
        (
            {"USER_SERVICE_PASSWORD_HASH_WORKERS": "0"},
            "invalid setting USER_SERVICE_PASSWORD_HASH_WORKERS:",
        ),
        (
            {"USER_SERVICE_SHUTDOWN_GRACE_SECONDS": "0"},
            "invalid setting USER_SERVICE_SHUTDOWN_GRACE_SECONDS:",
        ),
        (
            {"USER_SERVICE_PAGE_TOKEN_SECRET": "short"},
            "invalid setting USER_SERVICE_PAGE_TOKEN_SECRET: must be at least 16",
        ),
        (
            {"USER_SERVICE_PROFILE": "production", "USER_SERVICE_EMBEDDED_DYNAMODB": "true"},
            "invalid setting USER_SERVICE_EMBEDDED_DYNAMODB: "
            "the embedded in-memory DynamoDB is for development only",
        ),
    ],
)
def test_an_invalid_setting_is_refused_in_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: str
) -> None:
    message = refusal(monkeypatch, **variables)

    assert message.startswith(expected)
    assert "\n" not in message


def test_a_local_endpoint_in_development_gets_dummy_credentials_unless_some_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = Settings()

    local = dynamodb_options(settings, "http://127.0.0.1:8000")
    aws = dynamodb_options(settings, None)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    own = dynamodb_options(settings, "http://127.0.0.1:8000")

    assert (local.access_key_id, local.secret_access_key) == ("local", "local")
    assert aws.access_key_id is None and own.access_key_id is None


def test_production_always_uses_the_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    production(monkeypatch)

    options = dynamodb_options(Settings(), "http://dynamodb.internal:8000")

    assert options.access_key_id is None and options.secret_access_key is None


def test_development_defaults_authenticate_no_callers_and_write_mail_to_an_outbox() -> None:
    settings = Settings()

    assert not settings.authenticates_callers
    assert settings.notifier_kind == "outbox"
    assert settings.tls_cert_file is None


def test_production_sends_mail_over_smtp_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)

    settings = Settings()

    assert settings.notifier_kind == "smtp" and settings.authenticates_callers
    assert settings.api_keys[0].roles == ("admin",)


def test_production_refuses_plaintext_unless_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_ALLOW_PLAINTEXT="")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert missing.startswith("production needs USER_SERVICE_TLS_CERT_FILE")


def test_production_refuses_to_start_without_a_way_to_authenticate_callers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_API_KEYS="")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert "USER_SERVICE_API_KEYS or USER_SERVICE_TLS_CLIENT_CA_FILE" in missing


def test_production_accepts_a_client_ca_instead_of_api_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(
        monkeypatch,
        USER_SERVICE_API_KEYS="",
        USER_SERVICE_ALLOW_PLAINTEXT="",
        USER_SERVICE_TLS_CERT_FILE="/certs/server.pem",
        USER_SERVICE_TLS_KEY_FILE="/certs/server-key.pem",
        USER_SERVICE_TLS_CLIENT_CA_FILE="/certs/clients-ca.pem",
    )

    settings = Settings()

    assert settings.authenticates_callers and not settings.api_keys
    assert settings.unmet_serving_requirement() is None


def test_production_refuses_to_start_without_a_jwt_signing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_JWT_SIGNING_KEYS_FILE="")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert "USER_SERVICE_JWT_SIGNING_KEYS" in missing


def test_a_tls_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, USER_SERVICE_TLS_CERT_FILE="/certs/server.pem")

    assert "USER_SERVICE_TLS_CERT_FILE and USER_SERVICE_TLS_KEY_FILE go together" in message


def test_an_api_key_entry_must_hold_a_sha256_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(
        monkeypatch,
        USER_SERVICE_API_KEYS='[{"name": "billing", "sha256": "usk_not-a-hash", "roles": []}]',
    )

    assert message.startswith("invalid setting USER_SERVICE_API_KEYS")
    assert "usk_not-a-hash" not in message


def test_an_api_key_with_an_unknown_role_is_refused_naming_the_roles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = '[{"name": "billing", "sha256": "' + "ab" * 32 + '", "roles": ["users:read", "root"]}]'
    message = refusal(monkeypatch, USER_SERVICE_API_KEYS=entry)

    assert message == (
        "invalid setting USER_SERVICE_API_KEYS: unknown role 'root'; the roles are admin, "
        "users:read, users:write, users:admin, sessions:admin, events:read"
    )


def test_a_client_certificate_with_an_unknown_role_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(monkeypatch, USER_SERVICE_CLIENT_CERT_ROLES='{"ops-console": ["Admin"]}')

    assert message.startswith(
        "invalid setting USER_SERVICE_CLIENT_CERT_ROLES: unknown role 'Admin'"
    )


def test_the_reset_link_template_must_hold_the_token_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(
        monkeypatch, USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE="https://app.example.com/reset"
    )

    assert message == (
        "invalid setting USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE: "
        "must contain {token} exactly once"
    )


# --- production refusals of unsafe mail settings, and the access-token lifetime (issue 13) -------


def test_production_passes_every_serving_check_with_the_helper_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch)

    assert Settings().unmet_serving_requirement() is None


def test_production_refuses_to_serve_without_a_reset_link_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE="")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert missing.startswith("production needs USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE")
    assert "https://" in missing


@pytest.mark.parametrize(
    "link",
    [
        "http://accounts.example.com/reset-password?token={token}",
        "accounts.example.com/reset?token={token}",
        "HTTPS-not://accounts.example.com/reset?token={token}",
    ],
)
def test_production_refuses_a_reset_link_that_is_not_https(
    monkeypatch: pytest.MonkeyPatch, link: str
) -> None:
    production(monkeypatch, USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE=link)

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert "https:// USER_SERVICE_PASSWORD_RESET_LINK_TEMPLATE" in missing


def test_production_refuses_the_outbox_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, USER_SERVICE_NOTIFIER="outbox")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert missing.startswith("USER_SERVICE_NOTIFIER=outbox is for development")


def test_production_refuses_an_smtp_password_without_transport_security(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "smtp-secret-password-1"
    production(monkeypatch, USER_SERVICE_SMTP_SECURITY="none", USER_SERVICE_SMTP_PASSWORD=secret)

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert missing.startswith("USER_SERVICE_SMTP_SECURITY=none would send")
    assert secret not in missing


@pytest.mark.parametrize(
    ("security", "password"), [("none", ""), ("starttls", "pw-1"), ("tls", "pw-1")]
)
def test_production_accepts_smtp_without_a_password_or_with_transport_security(
    monkeypatch: pytest.MonkeyPatch, security: str, password: str
) -> None:
    production(
        monkeypatch, USER_SERVICE_SMTP_SECURITY=security, USER_SERVICE_SMTP_PASSWORD=password
    )

    assert Settings().unmet_serving_requirement() is None


def test_development_keeps_the_local_reset_link_outbox_and_plain_smtp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_SMTP_SECURITY", "none")
    monkeypatch.setenv("USER_SERVICE_SMTP_PASSWORD", "local-password")

    settings = Settings()

    assert settings.password_reset_link_template.startswith("http://localhost")
    assert settings.notifier_kind == "outbox"
    assert settings.unmet_serving_requirement() is None


def test_access_tokens_live_at_most_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_ACCESS_TOKEN_LIFETIME_SECONDS", "3600")
    assert Settings().access_token_lifetime_seconds == 3600

    message = refusal(monkeypatch, USER_SERVICE_ACCESS_TOKEN_LIFETIME_SECONDS="3601")

    assert message.startswith("invalid setting USER_SERVICE_ACCESS_TOKEN_LIFETIME_SECONDS")
    assert "3600" in message


def test_email_verification_defaults_a_day_five_codes_and_sign_in_needs_it_only_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert settings.email_verification_lifetime_seconds == 86400
    assert settings.verification_code_max_attempts == 5
    assert not settings.requires_verified_email
    production(monkeypatch)
    assert Settings().requires_verified_email
    monkeypatch.setenv("USER_SERVICE_REQUIRE_VERIFIED_EMAIL", "false")
    assert not Settings().requires_verified_email


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USER_SERVICE_EMAIL_VERIFICATION_LIFETIME_SECONDS", "299"),
        ("USER_SERVICE_EMAIL_VERIFICATION_LIFETIME_SECONDS", "604801"),
        ("USER_SERVICE_VERIFICATION_CODE_MAX_ATTEMPTS", "0"),
        ("USER_SERVICE_VERIFICATION_CODE_MAX_ATTEMPTS", "11"),
    ],
)
def test_verification_settings_out_of_range_are_refused_naming_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    assert name in refusal(monkeypatch, **{name: value})
