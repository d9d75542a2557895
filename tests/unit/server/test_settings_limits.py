"""The abuse-limit settings: their defaults, how they reach the policy, refusals naming them."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from server.from_settings import auth_policy
from server.settings import Settings, describe_invalid_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def test_the_defaults_mail_once_a_minute_five_an_hour_and_cap_the_work() -> None:
    settings = Settings()

    assert settings.security_mail_cooldown_seconds == 60
    assert settings.security_mail_max_per_hour == 5
    assert settings.max_background_jobs == 256
    assert settings.max_concurrent_rpcs == 256
    assert settings.password_hash_max_waiting == 128


def test_the_security_mail_settings_make_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_SECURITY_MAIL_COOLDOWN_SECONDS", "120")
    monkeypatch.setenv("USER_SERVICE_SECURITY_MAIL_MAX_PER_HOUR", "3")

    policy = auth_policy(Settings()).security_mail

    assert policy.cooldown == timedelta(minutes=2)
    assert policy.max_per_window == 3
    assert policy.window == timedelta(hours=1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("USER_SERVICE_SECURITY_MAIL_COOLDOWN_SECONDS", "-1"),
        ("USER_SERVICE_SECURITY_MAIL_COOLDOWN_SECONDS", "3601"),
        ("USER_SERVICE_SECURITY_MAIL_MAX_PER_HOUR", "0"),
        ("USER_SERVICE_MAX_BACKGROUND_JOBS", "0"),
        ("USER_SERVICE_MAX_CONCURRENT_RPCS", "0"),
        ("USER_SERVICE_PASSWORD_HASH_MAX_WAITING", "-1"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as error:
        Settings()

    assert describe_invalid_settings(error.value).startswith(f"invalid setting {variable}:")


def test_no_waiting_hashes_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_PASSWORD_HASH_MAX_WAITING", "0")

    assert Settings().password_hash_max_waiting == 0
