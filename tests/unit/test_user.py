"""The User aggregate records what happened to it and leaves versioning to persistence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.events import EmailChanged, ProfileUpdated, UserDeleted, UserRegistered
from domain.user import User, UserStatus
from domain.values import Email, PersonName, RefreshToken, UserId

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def make_user() -> User:
    return User.register(
        user_id=UserId.new(),
        email=Email.parse("Ada@Example.com"),
        first_name=PersonName.parse("Ada"),
        last_name=PersonName.parse("Lovelace"),
        password_hash="hash",
        now=NOW,
    )


def test_registered_user_is_active_unsaved_and_records_user_registered() -> None:
    user = make_user()
    assert user.status is UserStatus.ACTIVE
    assert user.version == 0
    assert user.created_at == user.updated_at == NOW
    assert user.events == [UserRegistered(user_id=user.id.value, occurred_at=NOW, email="Ada@Example.com")]


def test_user_repr_never_shows_the_password_hash() -> None:
    assert "hash" not in repr(make_user()).replace("password_hash", "")


def test_update_profile_changes_only_given_names_and_records_event() -> None:
    user = make_user()
    later = NOW + timedelta(minutes=1)
    user.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=later)
    assert (user.first_name.value, user.last_name.value) == ("Augusta", "Lovelace")
    assert user.updated_at == later
    assert user.version == 0
    assert user.events[-1] == ProfileUpdated(
        user_id=user.id.value, occurred_at=later, first_name="Augusta", last_name="Lovelace"
    )


def test_update_profile_with_same_names_is_a_no_op() -> None:
    user = make_user()
    user.events.clear()
    user.update_profile(first_name=PersonName.parse("Ada"), last_name=PersonName.parse("Lovelace"), now=NOW)
    assert user.events == []
    assert user.updated_at == NOW


def test_change_email_records_old_and_new_address() -> None:
    user = make_user()
    user.change_email(Email.parse("ada@lovelace.org"), now=NOW)
    assert user.email.value == "ada@lovelace.org"
    assert user.events[-1] == EmailChanged(
        user_id=user.id.value, occurred_at=NOW, old_email="Ada@Example.com", new_email="ada@lovelace.org"
    )


def test_mark_deleted_records_user_deleted() -> None:
    user = make_user()
    user.mark_deleted(now=NOW)
    assert user.events[-1] == UserDeleted(user_id=user.id.value, occurred_at=NOW)


def test_current_refresh_token_is_the_newest_unrevoked_one() -> None:
    user = make_user()
    old = RefreshToken("h1", "s1", NOW, NOW + timedelta(days=30))
    new = RefreshToken("h2", "s2", NOW + timedelta(hours=1), NOW + timedelta(days=30))
    revoked = RefreshToken("h3", "s3", NOW + timedelta(hours=2), NOW + timedelta(days=30), revoked_at=NOW)
    user.refresh_tokens = (old, new, revoked)
    assert user.current_refresh_token() == new
    assert new.is_active(NOW + timedelta(days=1))
    assert not new.is_active(NOW + timedelta(days=31))
    assert not revoked.is_active(NOW)
