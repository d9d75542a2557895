"""TOTP settings: production refuses to serve without an encryption key while TOTP is on;
development generates one for the run, loudly; a malformed key is refused without showing it."""

from __future__ import annotations

import base64
import logging

import pytest
from pydantic import SecretStr, ValidationError

from server.crypto.totp_keys import SealedTotpCodes, TotpKeyError
from server.from_settings import totp_codes
from server.settings import Settings, describe_invalid_settings
from tests.unit.server.test_settings import TOTP_KEYS, production

KEY = base64.b64encode(b"k" * 32).decode()


def test_production_refuses_to_serve_without_a_totp_key_while_totp_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_TOTP_ENCRYPTION_KEYS="")

    missing = Settings().unmet_serving_requirement()

    assert missing is not None and "USER_SERVICE_TOTP_ENCRYPTION_KEYS" in missing
    with pytest.raises(TotpKeyError):
        totp_codes(Settings())


def test_production_serves_without_a_totp_key_when_totp_is_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production(monkeypatch, USER_SERVICE_TOTP_ENCRYPTION_KEYS="", USER_SERVICE_TOTP_ENABLED="false")

    settings = Settings()

    assert settings.unmet_serving_requirement() is None
    assert totp_codes(settings) is None


def test_production_with_a_key_seals_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    production(monkeypatch)
    codes = totp_codes(Settings())
    assert isinstance(codes, SealedTotpCodes)
    assert codes.new_secret().sealed.value.startswith("2026-12:")
    assert TOTP_KEYS.partition(":")[2] not in repr(codes)


def test_development_without_a_key_generates_one_for_the_run_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        codes = totp_codes(Settings(profile="development"))

    assert codes is not None and codes.new_secret().sealed.value.startswith("dev-")
    assert "No TOTP encryption key configured" in caplog.text


@pytest.mark.parametrize("keys", ["k1", "k1:%%%%", "k1:" + base64.b64encode(b"short").decode()])
def test_a_malformed_key_is_refused_naming_the_variable_not_the_key(
    monkeypatch: pytest.MonkeyPatch, keys: str
) -> None:
    monkeypatch.setenv("USER_SERVICE_TOTP_ENCRYPTION_KEYS", keys)
    with pytest.raises(ValidationError) as raised:
        Settings()
    line = describe_invalid_settings(raised.value)
    assert line.startswith("invalid setting USER_SERVICE_TOTP_ENCRYPTION_KEYS: TOTP encryption key")
    assert keys.partition(":")[2] not in line or not keys.partition(":")[2]


def test_the_issuer_defaults_to_the_product_name_and_takes_no_colon() -> None:
    assert Settings(product_name="Acme").totp_issuer_name == "Acme"
    assert Settings(totp_issuer="Acme Staff").totp_issuer_name == "Acme Staff"
    with pytest.raises(ValidationError):
        Settings(totp_issuer="Acme:Staff")
    codes = totp_codes(
        Settings(totp_issuer="Acme Staff", totp_encryption_keys=SecretStr("k1:" + KEY))
    )
    assert codes is not None
    assert "issuer=Acme%20Staff" in codes.provisioning_uri(codes.new_secret(), "a@example.com")
