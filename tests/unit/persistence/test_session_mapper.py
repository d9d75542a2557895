"""The session item keeps a session's client details: each attribute only when given, all of them
through the round trip (and through a user item's embedded sessions, as export files hold them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from domain.errors import StorageError
from domain.values import ClientDetails
from persistence.session_mapper import (
    item_embedded_sessions,
    item_to_session,
    session_to_embedded,
    session_to_item,
)
from tests.builders import new_user, session

IDLE = timedelta(days=7)
DETAILS = ClientDetails(
    user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) ✓",
    ip_address="2001:db8::42",
    device_label="Anna's phone",
)


def test_a_session_s_client_details_survive_the_round_trip_as_their_own_attributes() -> None:
    user = new_user()
    stored = replace(session("phone", previous="older"), epoch=3, client=DETAILS)

    item = session_to_item(user.id.value, stored, idle_lifetime=IDLE)

    assert item["UserAgent"] == {"S": DETAILS.user_agent}
    assert item["IpAddress"] == {"S": "2001:db8::42"}
    assert item["DeviceLabel"] == {"S": "Anna's phone"}
    assert item_to_session(item) == stored


@pytest.mark.parametrize("given", ["user_agent", "ip_address", "device_label"])
def test_only_the_client_details_given_are_stored(given: str) -> None:
    client = ClientDetails(**{given: getattr(DETAILS, given)})
    stored = replace(session("one"), client=client)

    item = session_to_item(new_user().id.value, stored, idle_lifetime=IDLE)

    written = {"UserAgent", "IpAddress", "DeviceLabel"} & set(item)
    assert len(written) == 1
    assert item_to_session(item).client == client


def test_an_item_written_before_client_details_reads_as_a_session_without_them() -> None:
    item = session_to_item(new_user().id.value, session("old"), idle_lifetime=IDLE)
    assert not {"UserAgent", "IpAddress", "DeviceLabel"} & set(item)
    assert item_to_session(item).client == ClientDetails()


def test_embedded_sessions_keep_their_client_details_too() -> None:
    user_item = {"Sessions": {"L": [session_to_embedded(replace(session("a"), client=DETAILS))]}}
    assert item_embedded_sessions(user_item)[0].client == DETAILS


def test_a_client_detail_of_the_wrong_type_is_a_storage_error() -> None:
    item = session_to_item(new_user().id.value, session("bad"), idle_lifetime=IDLE)
    item["IpAddress"] = {"N": "1"}
    with pytest.raises(StorageError):
        item_to_session(item)


def test_a_session_keeps_how_its_sign_in_was_proven() -> None:
    stored = replace(session("otp"), amr=("pwd", "otp"))

    item = session_to_item(new_user().id.value, stored, idle_lifetime=IDLE)

    assert item["Amr"] == {"L": [{"S": "pwd"}, {"S": "otp"}]}
    assert item_to_session(item) == stored


def test_an_item_written_before_amr_reads_as_a_password_sign_in() -> None:
    item = session_to_item(new_user().id.value, session("old"), idle_lifetime=IDLE)
    del item["Amr"]
    assert item_to_session(item).amr == ("pwd",)
