"""Settings: defaults by profile, AWS variable aliases, and refusals that name their variable."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from server.settings import Settings, describe_invalid_settings
from server.storage import dynamodb_options


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(
            ("USER_SERVICE_", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
        ):
            monkeypatch.delenv(name)


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
    monkeypatch.setenv("USER_SERVICE_PROFILE", "production")

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
    monkeypatch.setenv("USER_SERVICE_PROFILE", "production")

    options = dynamodb_options(Settings(), "http://dynamodb.internal:8000")

    assert options.access_key_id is None and options.secret_access_key is None
