"""The WatchEvents settings: their defaults, and refusals naming their variable."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from persistence.deadline import EVENT_COMMIT_WINDOW_SECONDS
from server.settings import Settings, describe_invalid_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def test_streams_poll_every_second_deliver_after_five_and_32_may_watch_by_default() -> None:
    settings = Settings()

    assert settings.events_poll_interval_seconds == 1.0
    assert settings.events_settle_seconds == 5.0
    assert settings.max_event_watchers == 32


def test_the_settle_delay_must_exceed_the_commit_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_EVENTS_SETTLE_SECONDS", str(EVENT_COMMIT_WINDOW_SECONDS))

    with pytest.raises(ValidationError) as error:
        Settings()

    line = describe_invalid_settings(error.value)
    assert line.startswith("invalid setting USER_SERVICE_EVENTS_SETTLE_SECONDS: must exceed")


def test_a_settle_delay_just_over_the_commit_window_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USER_SERVICE_EVENTS_SETTLE_SECONDS", str(EVENT_COMMIT_WINDOW_SECONDS + 0.1))

    assert Settings().events_settle_seconds == pytest.approx(EVENT_COMMIT_WINDOW_SECONDS + 0.1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("USER_SERVICE_EVENTS_POLL_INTERVAL_SECONDS", "0"),
        ("USER_SERVICE_EVENTS_POLL_INTERVAL_SECONDS", "61"),
        ("USER_SERVICE_MAX_EVENT_WATCHERS", "0"),
        ("USER_SERVICE_EVENTS_SETTLE_SECONDS", "-1"),
    ],
)
def test_out_of_range_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as error:
        Settings()

    assert describe_invalid_settings(error.value).startswith(f"invalid setting {variable}:")
