"""The User aggregate records what happened to it and leaves versioning to persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidResetToken
from domain.events import (
    EmailChanged,
    EmailVerified,
    PasswordChanged,
    PasswordChangeReason,
    PasswordResetRequested,
    ProfileUpdated,
    SessionEndReason,
    SessionsRevoked,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserRegistered,
)
from domain.policies import SessionPolicy
from domain.secret_tokens import issue_token, parse_token
from domain.user import User, UserStatus
from domain.values import Email, PersonName, UserId
from tests.builders import T0, session

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = SessionPolicy()


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
    assert user.events == [
        UserRegistered(
            user_id=user.id.value,
            occurred_at=NOW,
            email="Ada@Example.com",
            first_name="Ada",
            last_name="Lovelace",
        )
    ]


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
    user.update_profile(
        first_name=PersonName.parse("Ada"), last_name=PersonName.parse("Lovelace"), now=NOW
    )
    assert user.events == []
    assert user.updated_at == NOW


def test_change_email_records_old_and_new_address() -> None:
    user = make_user()
    user.change_email(Email.parse("ada@lovelace.org"), now=NOW)
    assert user.email.value == "ada@lovelace.org"
    assert user.events[-1] == EmailChanged(
        user_id=user.id.value,
        occurred_at=NOW,
        old_email="Ada@Example.com",
        new_email="ada@lovelace.org",
    )


def test_mark_deleted_records_user_deleted() -> None:
    user = make_user()
    user.mark_deleted(now=NOW)
    assert user.events[-1] == UserDeleted(user_id=user.id.value, occurred_at=NOW)


def test_disable_ends_every_session_and_enable_lets_the_user_in_again() -> None:
    user = make_user()
    current = (session("a"), session("b", minutes=1))
    user.events.clear()
    later = T0 + timedelta(hours=1)

    user.disable(later, POLICY, current)

    assert user.status is UserStatus.DISABLED
    assert user.session_epoch == 1  # the sessions of epoch 0 are over
    assert user.updated_at == later
    uid = user.id.value
    assert user.events == [
        UserDisabled(uid, later),
        SessionsRevoked(uid, later, reason=SessionEndReason.USER_DISABLED, sessions_ended=2),
    ]
    user.events.clear()
    user.enable(later + timedelta(hours=1))
    status: UserStatus = user.status  # not the DISABLED that mypy keeps from the check above
    assert status is UserStatus.ACTIVE
    assert user.updated_at == later + timedelta(hours=1)
    assert user.events == [UserEnabled(uid, later + timedelta(hours=1))]


def test_disabling_a_disabled_user_records_nothing() -> None:
    user = make_user()
    user.disable(NOW, POLICY, ())
    user.events.clear()

    user.disable(NOW + timedelta(hours=1), POLICY, ())

    assert user.events == []
    assert user.updated_at == NOW
    assert user.session_epoch == 0  # no session was live: the epoch stays


def test_enabling_an_active_user_changes_nothing() -> None:
    user = make_user()
    user.events.clear()
    user.enable(NOW + timedelta(hours=1))
    assert user.status is UserStatus.ACTIVE and user.updated_at == NOW
    assert user.events == []


def test_changing_the_password_records_password_changed_without_any_hash() -> None:
    user = make_user()
    user.events.clear()
    later = NOW + timedelta(minutes=1)

    user.change_password("new-hash", later)

    assert user.events == [PasswordChanged(user.id.value, later, PasswordChangeReason.CHANGED)]
    assert "new-hash" not in repr(user.events)


def test_a_stronger_hash_of_the_same_password_records_nothing() -> None:
    user = make_user()
    user.events.clear()
    user.upgrade_password_hash("stronger")
    assert user.password_hash == "stronger"
    assert user.events == []


def test_a_reset_request_records_its_expiry_but_never_the_token() -> None:
    user = make_user()
    user.events.clear()

    token = user.request_password_reset(NOW, timedelta(hours=1))

    expires = NOW + timedelta(hours=1)
    assert user.events == [PasswordResetRequested(user.id.value, NOW, expires_at=expires)]
    assert token.value not in repr(user.events) and token.token_hash not in repr(user.events)


def test_a_reset_records_password_changed_by_reset_and_ends_every_session() -> None:
    user = make_user()
    token = user.request_password_reset(T0, timedelta(hours=1))
    current = (session("a"), session("b", minutes=1))
    user.events.clear()
    later = T0 + timedelta(minutes=5)

    user.reset_password(parse_token(token.value), "new-hash", later, POLICY, current)

    uid = user.id.value
    assert user.events == [
        PasswordChanged(uid, later, PasswordChangeReason.RESET),
        SessionsRevoked(uid, later, reason=SessionEndReason.PASSWORD_RESET, sessions_ended=2),
    ]
    assert user.session_epoch == 1


def test_a_refused_reset_records_nothing() -> None:
    user = make_user()
    user.request_password_reset(NOW, timedelta(hours=1))
    user.events.clear()

    with pytest.raises(InvalidResetToken):
        user.reset_password(parse_token(issue_token(user.id).value), "new-hash", NOW, POLICY, ())

    assert user.events == []


def test_marking_the_email_verified_records_it_once() -> None:
    user = make_user()
    later = NOW + timedelta(minutes=5)
    user.mark_email_verified(later)
    user.mark_email_verified(later + timedelta(minutes=1))
    assert (user.email_verified, user.email_verified_at) == (True, later)
    assert user.events[-1] == EmailVerified(user.id.value, later, email=user.email.value)
    assert [type(e) for e in user.events].count(EmailVerified) == 1
