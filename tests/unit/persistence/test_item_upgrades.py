"""Items written by older schema versions are read in the current shape; newer ones are refused."""

from __future__ import annotations

from typing import Any

import pytest

from domain.errors import StorageError
from domain.values import Session
from persistence.item_upgrades import item_schema_version, needs_upgrade, upgrade_item
from persistence.schema import SCHEMA_VERSION
from persistence.session_mapper import item_embedded_sessions, session_to_embedded
from persistence.user_mapper import item_event_seq, item_revision, item_to_user, user_to_item
from tests.builders import new_user, session, state_of


def version_1_item(*, with_revision: bool, with_schema_version: bool = True) -> dict[str, Any]:
    """A user item as schema version 1 wrote it: no EventSeq, Revision only after sign-in came."""
    item = user_to_item(new_user("Old@Example.com"), version=3, revision=5, event_seq=0)
    del item["EventSeq"], item["SessionEpoch"]
    item["SchemaVersion"] = {"N": "1"}
    if not with_revision:
        del item["Revision"]
    if not with_schema_version:
        del item["SchemaVersion"]
    return item


def version_2_item(*sessions: Session) -> dict[str, Any]:
    """A user item as schema version 2 wrote it: its sessions in ``Sessions``, no epoch."""
    item = user_to_item(new_user("Old@Example.com"), version=3, revision=5, event_seq=2)
    del item["SessionEpoch"]
    item["SchemaVersion"] = {"N": "2"}
    item["Sessions"] = {"L": [session_to_embedded(s) for s in sessions]}
    return item


def test_the_current_schema_is_version_5_and_new_items_carry_it() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=4)

    assert SCHEMA_VERSION == 5
    assert item_schema_version(item) == 5
    assert not needs_upgrade(item)
    assert upgrade_item(item) is item


def test_a_version_1_item_gains_an_empty_event_sequence_and_keeps_its_revision() -> None:
    item = version_1_item(with_revision=True)

    upgraded = upgrade_item(item)

    assert needs_upgrade(item)
    assert upgraded["SchemaVersion"] == {"N": "5"}
    assert upgraded["EventSeq"] == {"N": "0"}
    assert upgraded["SessionEpoch"] == {"N": "0"}
    assert upgraded["Revision"] == {"N": "5"}
    assert "EventSeq" not in item, "the stored item as read is left as it was"


def test_a_version_1_item_from_before_revisions_takes_its_version_as_revision() -> None:
    item = version_1_item(with_revision=False, with_schema_version=False)

    assert item_schema_version(item) == 1
    assert item_revision(item) == 3
    assert item_event_seq(item) == 0


def test_a_version_1_item_reads_as_the_same_user_as_a_current_one() -> None:
    user = new_user("Old@Example.com")
    current = user_to_item(user, version=3, revision=5, event_seq=0)
    old = version_1_item(with_revision=False)
    old["Id"], old["CreatedAt"], old["UpdatedAt"] = (
        current["Id"],
        current["CreatedAt"],
        current["UpdatedAt"],
    )
    old["PasswordHash"] = current["PasswordHash"]

    assert state_of(item_to_user(old)) == state_of(item_to_user(current))


def test_a_version_2_item_is_at_session_epoch_0_and_keeps_its_sessions_for_the_move() -> None:
    held = (session("a"), session("b", minutes=1, previous="a0"))
    item = version_2_item(*held)

    upgraded = upgrade_item(item)

    assert needs_upgrade(item)
    assert upgraded["SchemaVersion"] == {"N": "5"}
    assert upgraded["SessionEpoch"] == {"N": "0"}
    assert item_to_user(item).session_epoch == 0
    assert item_embedded_sessions(item) == list(held)  # moved by the user's next write
    assert item_revision(item) == 5 and item_event_seq(item) == 2


@pytest.mark.parametrize("version", ["6", "99"])
def test_an_item_of_a_newer_schema_is_refused_not_read(version: str) -> None:
    item = {**user_to_item(new_user(), version=1, revision=1, event_seq=0)}
    item["SchemaVersion"] = {"N": version}

    with pytest.raises(ValueError, match=r"knows up to 5"):
        upgrade_item(item)
    with pytest.raises(StorageError):
        item_to_user(item)


def test_an_item_of_schema_version_0_is_refused() -> None:
    item = {
        **user_to_item(new_user(), version=1, revision=1, event_seq=0),
        "SchemaVersion": {"N": "0"},
    }

    with pytest.raises(ValueError, match="unknown schema version"):
        upgrade_item(item)


def test_a_version_3_item_upgrades_as_an_unverified_address_and_nothing_else() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=4)
    item["SchemaVersion"] = {"N": "3"}
    upgraded = upgrade_item(item)
    assert upgraded == {**item, "SchemaVersion": {"N": "5"}}
    assert "EmailVerified" not in upgraded


def test_a_version_4_item_upgrades_to_5_as_a_user_without_second_factors() -> None:
    item = user_to_item(new_user(), version=2, revision=3, event_seq=4)
    item["SchemaVersion"] = {"N": "4"}

    upgraded = upgrade_item(item)
    user = item_to_user(item)

    assert upgraded == {**item, "SchemaVersion": {"N": "5"}}
    assert item["SchemaVersion"] == {"N": "4"}, "the item as read is left as it was"
    assert user.totp is None and user.pending_totp is None
    assert user.recovery_code_hashes == () and user.second_factor_kinds() == frozenset()
