"""HTTP listener settings: off unless a port is set, a port of its own, a base public URL, and in
production an https public URL (verifiers trust the keys its jwks_uri serves)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from server.settings import Settings, describe_invalid_settings
from tests.unit.server.test_settings import production


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def refused(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    return describe_invalid_settings(raised.value)


def test_the_listener_is_off_by_default_and_listens_on_the_service_host() -> None:
    settings = Settings()
    assert settings.http_port is None and settings.http_public_url is None
    assert settings.http_address == "127.0.0.1"
    assert Settings(host="10.0.0.5", http_port=8081).http_address == "10.0.0.5"
    assert Settings(http_host="0.0.0.0", http_port=8081).http_address == "0.0.0.0"


def test_it_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_HTTP_PORT", "8081")
    monkeypatch.setenv("USER_SERVICE_HTTP_PUBLIC_URL", "https://users.example.com/")

    settings = Settings()

    assert settings.http_port == 8081
    assert settings.http_public_url == "https://users.example.com"  # no trailing slash


@pytest.mark.parametrize(
    "ports",
    [
        {"USER_SERVICE_HTTP_PORT": "50051"},
        {"USER_SERVICE_PORT": "7000", "USER_SERVICE_HTTP_PORT": "7000"},
        {"USER_SERVICE_HEALTH_PORT": "50052", "USER_SERVICE_HTTP_PORT": "50052"},
        {"USER_SERVICE_METRICS_PORT": "9464", "USER_SERVICE_HTTP_PORT": "9464"},
    ],
)
def test_a_port_another_listener_has_is_refused(
    monkeypatch: pytest.MonkeyPatch, ports: dict[str, str]
) -> None:
    message = refused(monkeypatch, **ports)
    assert "USER_SERVICE_HTTP_PORT must differ from USER_SERVICE_PORT" in message


def test_port_zero_picks_a_free_port_beside_metrics_on_port_zero() -> None:
    settings = Settings(http_port=0, metrics_port=0)
    assert (settings.http_port, settings.metrics_port) == (0, 0)


@pytest.mark.parametrize("port", ["-1", "65536", "eighty"])
def test_a_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch, port: str) -> None:
    assert "USER_SERVICE_HTTP_PORT" in refused(monkeypatch, USER_SERVICE_HTTP_PORT=port)


@pytest.mark.parametrize(
    "url",
    [
        "users.example.com",
        "ftp://users.example.com",
        "https://",
        "https://user:secret@users.example.com",
        "https://users.example.com/?x=1",
        "https://users.example.com/#keys",
    ],
)
def test_a_public_url_that_is_no_base_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    message = refused(monkeypatch, USER_SERVICE_HTTP_PUBLIC_URL=url)
    assert message.startswith("invalid setting USER_SERVICE_HTTP_PUBLIC_URL:")
    assert "secret" not in message


def test_production_serves_http_only_with_an_https_public_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_HTTP_PORT="8443")
    assert "USER_SERVICE_HTTP_PUBLIC_URL" in str(Settings().unmet_serving_requirement())

    monkeypatch.setenv("USER_SERVICE_HTTP_PUBLIC_URL", "http://users.internal:8443")
    assert "https://" in str(Settings().unmet_serving_requirement())

    monkeypatch.setenv("USER_SERVICE_HTTP_PUBLIC_URL", "https://users.example.com")
    assert Settings().unmet_serving_requirement() is None


def test_production_without_the_listener_needs_no_public_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch)
    assert Settings().unmet_serving_requirement() is None


def test_development_serves_http_without_a_public_url() -> None:
    assert Settings(http_port=8081).unmet_serving_requirement() is None
