"""Lazy-migration settings: off unless the URL is set; the URL needs a base64 HMAC key; in
production it must be https and the key at least 32 bytes; no error shows the key."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from server.from_settings import legacy_authenticator
from server.legacy_auth import HttpLegacyAuthenticator
from server.settings import Settings, describe_invalid_settings
from tests.unit.server.test_settings import production

KEY = base64.b64encode(b"k" * 32).decode()
SHORT_KEY = base64.b64encode(b"k" * 31).decode()
URL = "https://old.example.com/legacy/check-password"


def test_the_hook_is_off_by_default() -> None:
    settings = Settings(profile="development")
    assert settings.legacy_auth_url is None
    assert legacy_authenticator(settings) is None


def test_the_url_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_LEGACY_AUTH_URL", URL)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "USER_SERVICE_LEGACY_AUTH_HMAC_KEY" in describe_invalid_settings(error.value)


@pytest.mark.parametrize("key", ["not base64!!", "", "====", "c2VjcmV0=x"])
def test_a_key_that_is_not_base64_is_refused_without_being_shown(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("USER_SERVICE_LEGACY_AUTH_URL", URL)
    with pytest.raises(ValidationError) as error:
        Settings(legacy_auth_hmac_key=SecretStr(key or " "))
    message = describe_invalid_settings(error.value)
    assert "USER_SERVICE_LEGACY_AUTH_HMAC_KEY" in message
    assert key.strip() == "" or key not in message


@pytest.mark.parametrize(
    "url", ["ftp://old.example.com/x", "old.example.com/x", "https://user:pw@old.example.com/x"]
)
def test_a_url_that_is_not_plain_http_is_refused(url: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(legacy_auth_url=url, legacy_auth_hmac_key=SecretStr(KEY))
    assert "USER_SERVICE_LEGACY_AUTH_URL" in describe_invalid_settings(error.value)


def test_development_takes_http_and_a_short_key() -> None:
    settings = Settings(
        profile="development",
        legacy_auth_url="http://127.0.0.1:8080/x",
        legacy_auth_hmac_key=SecretStr(SHORT_KEY),
    )
    assert settings.unmet_serving_requirement() is None
    hook = legacy_authenticator(settings)
    assert isinstance(hook, HttpLegacyAuthenticator)
    assert SHORT_KEY not in repr(hook) and "kkkk" not in repr(hook)


def test_production_needs_https(monkeypatch: pytest.MonkeyPatch) -> None:
    production(
        monkeypatch,
        USER_SERVICE_LEGACY_AUTH_URL="http://old.example.com/x",
        USER_SERVICE_LEGACY_AUTH_HMAC_KEY=KEY,
    )
    missing = Settings().unmet_serving_requirement()
    assert missing is not None and "https:// USER_SERVICE_LEGACY_AUTH_URL" in missing


def test_production_needs_a_key_of_32_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    production(
        monkeypatch, USER_SERVICE_LEGACY_AUTH_URL=URL, USER_SERVICE_LEGACY_AUTH_HMAC_KEY=SHORT_KEY
    )
    missing = Settings().unmet_serving_requirement()
    assert missing is not None and "at least 32 bytes" in missing
    assert SHORT_KEY not in missing


def test_production_serves_with_https_and_a_long_key(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch, USER_SERVICE_LEGACY_AUTH_URL=URL, USER_SERVICE_LEGACY_AUTH_HMAC_KEY=KEY)
    settings = Settings()
    assert settings.unmet_serving_requirement() is None
    assert settings.legacy_auth_timeout_seconds == 2.0
