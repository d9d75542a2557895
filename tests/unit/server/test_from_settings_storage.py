"""The events table's settings: its name reaches the persistence layer, its retention is bounded."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from persistence.schema import TableNames
from server.from_settings import table_names
from server.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


def test_the_default_table_names_are_the_schemas() -> None:
    assert table_names(Settings()) == TableNames("Users", "UserEmails", "UserEvents")


def test_each_table_name_comes_from_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_TABLE_NAME", "Users-test")
    monkeypatch.setenv("USER_SERVICE_EMAIL_TABLE_NAME", "Emails-test")
    monkeypatch.setenv("USER_SERVICE_EVENTS_TABLE_NAME", "Events-test")

    assert table_names(Settings()) == TableNames("Users-test", "Emails-test", "Events-test")


def test_events_are_kept_thirty_days_unless_told_and_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().events_retention_days == 30
    monkeypatch.setenv("USER_SERVICE_EVENTS_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError, match="events_retention_days"):
        Settings()


def test_events_are_written_over_eight_stream_shards_unless_told_one_to_eight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().events_stream_shards == 8
    monkeypatch.setenv("USER_SERVICE_EVENTS_STREAM_SHARDS", "1")
    assert Settings().events_stream_shards == 1
    for refused in ("0", "9"):
        monkeypatch.setenv("USER_SERVICE_EVENTS_STREAM_SHARDS", refused)
        with pytest.raises(ValidationError, match="events_stream_shards"):
            Settings()
