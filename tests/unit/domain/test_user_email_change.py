"""Changing a user's address: asked, then confirmed from the new address or cancelled from the old
one, or set by an administrator; a new address is unverified unless proven or vouched for."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidEmailChangeToken, InvalidValue
from domain.events import (
    EmailChangeCancelled,
    EmailChanged,
    EmailChangeRequested,
    EmailVerified,
)
from domain.policies import SecurityMailPolicy, SessionPolicy
from domain.secret_tokens import hash_token, issue_token, parse_token
from domain.user import User
from domain.values import Email
from tests.builders import T0, new_user

LIFETIME = timedelta(hours=24)
NEW = Email.parse("Ada.New@Example.org")


def verified_user() -> User:
    user = new_user("Ada@Example.com")
    user.mark_email_verified(T0)
    user.events.clear()
    user.touched = False  # as once stored
    return user


def test_change_email_leaves_a_new_address_unverified() -> None:
    user = verified_user()
    user.change_email(NEW, now=T0 + timedelta(minutes=1))
    assert (user.email, user.email_verified, user.email_verified_at) == (NEW, False, None)


def test_change_email_to_another_letter_case_keeps_the_address_verified() -> None:
    user = verified_user()
    user.change_email(Email.parse("ADA@example.com"), now=T0 + timedelta(minutes=1))
    assert (user.email.value, user.email_verified, user.email_verified_at) == (
        "ADA@example.com",
        True,
        T0,
    )


def test_a_request_holds_only_hashes_of_two_distinct_tokens_and_records_the_request() -> None:
    user = verified_user()

    tokens = user.request_email_change(NEW, T0, LIFETIME)

    pending = user.pending_email_change
    assert pending is not None
    assert tokens.confirm.value != tokens.cancel.value
    assert tokens.confirm.value.startswith(f"{user.id.value}.")
    assert pending.confirm_token_hash == hash_token(tokens.confirm.value)
    assert pending.cancel_token_hash == hash_token(tokens.cancel.value)
    assert (pending.new_email, pending.requested_at, pending.expires_at) == (NEW, T0, T0 + LIFETIME)
    assert tokens.expires_at == T0 + LIFETIME
    assert user.events == [
        EmailChangeRequested(user.id.value, T0, new_email=NEW.value, expires_at=T0 + LIFETIME)
    ]
    # The address in use is untouched until confirmed, and nothing callers see moved.
    assert (user.email.value, user.email_verified, user.touched) == ("Ada@Example.com", True, False)
    assert pending.confirm_token_hash not in repr(user)
    assert pending.cancel_token_hash not in repr(user)


@pytest.mark.parametrize("same", ["Ada@Example.com", "ada@example.com", "ADA@EXAMPLE.COM"])
def test_asking_for_the_address_in_use_in_any_letter_case_is_refused(same: str) -> None:
    user = verified_user()
    with pytest.raises(InvalidValue):
        user.request_email_change(Email.parse(same), T0, LIFETIME)
    assert user.pending_email_change is None and user.events == []


def test_confirming_moves_the_account_verifies_the_address_and_voids_a_pending_reset() -> None:
    user = verified_user()
    user.request_password_reset(T0, timedelta(hours=1))
    tokens = user.request_email_change(NEW, T0, LIFETIME)
    user.events.clear()
    later = T0 + timedelta(hours=1)

    user.confirm_email_change(parse_token(tokens.confirm.value), later)

    assert (user.email, user.email_verified, user.email_verified_at) == (NEW, True, later)
    assert user.pending_email_change is None and user.password_reset is None
    assert user.touched and user.updated_at == later
    uid = user.id.value
    assert user.events == [
        EmailChanged(uid, later, old_email="Ada@Example.com", new_email=NEW.value),
        EmailVerified(uid, later, email=NEW.value),
    ]


def test_a_confirm_token_works_once() -> None:
    user = verified_user()
    tokens = user.request_email_change(NEW, T0, LIFETIME)
    user.confirm_email_change(parse_token(tokens.confirm.value), T0)
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(tokens.confirm.value), T0)


def test_an_expired_confirm_token_is_refused_and_changes_nothing() -> None:
    user = verified_user()
    tokens = user.request_email_change(NEW, T0, LIFETIME)
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(tokens.confirm.value), T0 + LIFETIME)
    assert user.email.value == "Ada@Example.com" and user.pending_email_change is not None


def test_the_cancel_token_does_not_confirm_nor_the_confirm_token_cancel() -> None:
    user = verified_user()
    tokens = user.request_email_change(NEW, T0, LIFETIME)
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(tokens.cancel.value), T0)
    with pytest.raises(InvalidEmailChangeToken):
        user.cancel_email_change(parse_token(tokens.confirm.value), T0)
    assert user.pending_email_change is not None


def test_a_newer_request_voids_the_tokens_of_the_earlier_one() -> None:
    user = verified_user()
    first = user.request_email_change(NEW, T0, LIFETIME)
    second = user.request_email_change(Email.parse("other@example.net"), T0, LIFETIME)

    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(first.confirm.value), T0)
    with pytest.raises(InvalidEmailChangeToken):
        user.cancel_email_change(parse_token(first.cancel.value), T0)
    user.confirm_email_change(parse_token(second.confirm.value), T0)
    assert user.email.value == "other@example.net"


def test_a_token_of_another_user_or_with_nothing_pending_is_refused() -> None:
    user, other = verified_user(), verified_user()
    foreign = other.request_email_change(NEW, T0, LIFETIME)
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(foreign.confirm.value), T0)
    user.request_email_change(NEW, T0, LIFETIME)
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(foreign.confirm.value), T0)
    forged = issue_token(user.id)  # well formed, this user's id, never issued for the change
    with pytest.raises(InvalidEmailChangeToken):
        user.cancel_email_change(parse_token(forged.value), T0)


def test_cancelling_drops_the_pending_change_and_records_it() -> None:
    user = verified_user()
    tokens = user.request_email_change(NEW, T0, LIFETIME)
    user.events.clear()

    user.cancel_email_change(parse_token(tokens.cancel.value), T0 + timedelta(minutes=5))

    assert user.pending_email_change is None
    assert user.email.value == "Ada@Example.com" and user.email_verified
    assert user.events == [
        EmailChangeCancelled(user.id.value, T0 + timedelta(minutes=5), new_email=NEW.value)
    ]
    with pytest.raises(InvalidEmailChangeToken):
        user.confirm_email_change(parse_token(tokens.confirm.value), T0)


def test_an_administrator_sets_a_verified_address_and_voids_what_is_pending() -> None:
    user = new_user("Ada@Example.com")
    user.request_password_reset(T0, timedelta(hours=1))
    user.request_email_change(NEW, T0, LIFETIME)
    user.events.clear()

    user.change_email_verified(Email.parse("support-set@example.net"), T0)

    assert (user.email.value, user.email_verified, user.email_verified_at) == (
        "support-set@example.net",
        True,
        T0,
    )
    assert user.pending_email_change is None and user.password_reset is None
    assert [type(event) for event in user.events] == [EmailChanged, EmailVerified]
    with pytest.raises(InvalidValue):
        user.change_email_verified(Email.parse("SUPPORT-SET@example.net"), T0)


def test_disabling_voids_a_pending_change() -> None:
    user = verified_user()
    user.request_email_change(NEW, T0, LIFETIME)
    user.disable(T0, SessionPolicy(), ())
    assert user.pending_email_change is None


def test_the_security_mail_wait_says_when_the_next_mail_may_go() -> None:
    policy = SecurityMailPolicy(
        cooldown=timedelta(seconds=60), max_per_window=2, window=timedelta(hours=1)
    )
    user = verified_user()
    assert user.security_mail_wait(T0, policy) is None
    user.record_security_mail(T0, policy)
    assert user.security_mail_wait(T0 + timedelta(seconds=10), policy) == timedelta(seconds=50)
    assert user.security_mail_wait(T0 + timedelta(seconds=60), policy) is None
    user.record_security_mail(T0 + timedelta(minutes=2), policy)
    # Two within the hour: the next may go when the first leaves the window.
    wait = user.security_mail_wait(T0 + timedelta(minutes=10), policy)
    assert wait == timedelta(minutes=50)
    for minutes in (3, 10, 59, 60, 61):
        now = T0 + timedelta(minutes=minutes)
        assert (user.security_mail_wait(now, policy) is None) is user.may_send_security_mail(
            now, policy
        ), minutes
