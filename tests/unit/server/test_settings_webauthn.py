"""The WebAuthn settings: development defaults for localhost, origins from a comma-separated list,
and refusals of an origin that is no page of the relying party, or not https in production."""

from __future__ import annotations

import json
import os

import pytest
from pydantic import ValidationError

from server.from_settings import relying_party
from server.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def test_development_defaults_serve_localhost() -> None:
    settings = Settings()
    assert settings.webauthn_rp_id == "localhost"
    assert settings.webauthn_origins == ("http://localhost:8080",)
    options = json.loads(relying_party(settings).request_options(challenge=b"c" * 32, allow=()))
    assert options["rpId"] == "localhost"


def test_origins_come_comma_separated_and_the_name_defaults_to_the_product(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_PROFILE", "production")
    monkeypatch.setenv("USER_SERVICE_PRODUCT_NAME", "Acme")
    monkeypatch.setenv("USER_SERVICE_WEBAUTHN_RP_ID", "example.com")
    monkeypatch.setenv(
        "USER_SERVICE_WEBAUTHN_ORIGINS", "https://example.com, https://app.example.com:8443"
    )
    settings = Settings()
    assert settings.webauthn_origins == ("https://example.com", "https://app.example.com:8443")
    assert relying_party(settings)._rp_name == "Acme"


@pytest.mark.parametrize(
    ("rp_id", "origins", "profile", "complaint"),
    [
        ("example.com", "https://evil.example", "development", "not a page of the relying party"),
        ("example.com", "https://notexample.com", "development", "not a page of the relying party"),
        ("example.com", "http://app.example.com", "production", "https in production"),
        ("example.com", "https://app.example.com/login", "development", "no path"),
        ("example.com", "app.example.com", "development", "must be an origin"),
        ("https://example.com", "https://example.com", "development", "host name"),
        ("Example.COM", "https://example.com", "development", "host name"),
    ],
)
def test_refused_settings_say_why(
    monkeypatch: pytest.MonkeyPatch, rp_id: str, origins: str, profile: str, complaint: str
) -> None:
    monkeypatch.setenv("USER_SERVICE_PROFILE", profile)
    monkeypatch.setenv("USER_SERVICE_WEBAUTHN_RP_ID", rp_id)
    monkeypatch.setenv("USER_SERVICE_WEBAUTHN_ORIGINS", origins)
    with pytest.raises(ValidationError, match=complaint):
        Settings()


def test_production_takes_http_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_PROFILE", "production")
    assert Settings().webauthn_origins == ("http://localhost:8080",)
