"""Email verification on the User aggregate: a link token and a 6-digit code, bound to the address
they were mailed to, single-use, expiring, and the code void after a few wrong tries."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from domain.errors import (
    InvalidVerificationCode,
    InvalidVerificationToken,
    VerificationCodeAttemptsExhausted,
)
from domain.events import EmailVerificationRequested, EmailVerified
from domain.policies import SessionPolicy
from domain.secret_tokens import (
    IssuedCode,
    IssuedToken,
    hash_code,
    hash_token,
    issue_token,
    parse_token,
)
from domain.user import User
from domain.values import Email, UserId
from tests.builders import T0, new_user

DAY = timedelta(hours=24)
LIMIT = 5


def requested(user: User | None = None) -> tuple[User, IssuedToken, IssuedCode]:
    user = user or new_user()
    user.events.clear()
    token, code = user.request_email_verification(T0, DAY)
    return user, token, code


def other_code(code: IssuedCode) -> str:
    return f"{(int(code.value) + 1) % 10**6:06d}"


def test_a_request_issues_a_link_token_and_a_six_digit_code_storing_only_their_hashes() -> None:
    user, token, code = requested()

    pending = user.email_verification
    assert pending is not None
    assert pending.email == "ada.lovelace@example.com"
    assert pending.token_hash == hash_token(token.value) != token.value
    assert len(code.value) == 6 and code.value.isdigit()
    assert pending.code_hash == hash_code(code.value, pending.code_salt) != code.value
    assert (pending.requested_at, pending.expires_at, pending.wrong_codes) == (T0, T0 + DAY, 0)
    assert (
        parse_token(token.value).user_id == user.id and parse_token(token.value).session_id is None
    )
    assert user.events == [EmailVerificationRequested(user.id.value, T0, expires_at=T0 + DAY)]
    assert not user.touched  # a pending verification is bookkeeping: the version stays


def test_no_secret_shows_in_the_reprs() -> None:
    user, token, code = requested()
    shown = repr(user) + repr(token) + repr(code) + repr(user.email_verification) + str(user.events)
    pending = user.email_verification
    assert pending is not None
    for secret in (
        token.value,
        code.value,
        pending.token_hash,
        pending.code_hash,
        pending.code_salt,
    ):
        assert secret not in shown


def test_each_issue_has_its_own_salt_so_equal_codes_hash_differently() -> None:
    salts = {requested()[0].email_verification.code_salt for _ in range(20)}  # type: ignore[union-attr]
    assert len(salts) == 20


def test_the_link_token_verifies_the_address_once() -> None:
    user, token, _ = requested()

    assert user.verify_email(parse_token(token.value), T0 + timedelta(hours=1), LIMIT)

    assert user.email_verified and user.email_verified_at == T0 + timedelta(hours=1)
    assert user.email_verification is None
    assert user.touched
    assert user.events[-1] == EmailVerified(
        user.id.value, T0 + timedelta(hours=1), "ada.lovelace@example.com"
    )
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0 + timedelta(hours=1), LIMIT)


def test_the_code_verifies_the_address_and_spends_the_link_too() -> None:
    user, token, code = requested()

    assert user.verify_email(code.value, T0, LIMIT)

    assert user.email_verified and user.email_verification is None
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0, LIMIT)


def test_the_link_and_the_code_work_until_just_before_they_expire() -> None:
    user, token, code = requested()
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0 + DAY, LIMIT)
    with pytest.raises(InvalidVerificationCode):
        user.verify_email(code.value, T0 + DAY, LIMIT)
    assert not user.email_verified
    assert user.verify_email(code.value, T0 + DAY - timedelta(microseconds=1), LIMIT)


def test_a_newer_request_supersedes_the_earlier_link_and_code() -> None:
    user, old_token, old_code = requested()
    new_token, new_code = user.request_email_verification(T0 + timedelta(minutes=5), DAY)

    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(old_token.value), T0 + timedelta(minutes=6), LIMIT)
    if old_code.value != new_code.value:
        assert not user.verify_email(old_code.value, T0 + timedelta(minutes=6), LIMIT)
    assert user.verify_email(parse_token(new_token.value), T0 + timedelta(minutes=6), LIMIT)


def test_tokens_that_are_not_this_verification_s_are_refused() -> None:
    user, token, _ = requested()
    reset = user.request_password_reset(T0, timedelta(hours=1))
    someone_else = issue_token(UserId.new())
    refresh = issue_token(user.id, "9a0e5c1e-6f1e-4c57-8a86-1b1d1f8d7f00")
    for presented in (reset, someone_else, refresh):
        with pytest.raises(InvalidVerificationToken):
            user.verify_email(parse_token(presented.value), T0, LIMIT)
    # This user's hash under another user's id: the token names its user.
    forged = dataclasses.replace(parse_token(token.value), user_id=UserId.new())
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(forged, T0, LIMIT)
    assert not user.email_verified
    assert user.verify_email(parse_token(token.value), T0, LIMIT)


def test_a_verification_is_void_once_the_address_changed() -> None:
    user, token, code = requested()
    user.change_email(Email.parse("ada@elsewhere.example"), now=T0)

    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0, LIMIT)
    with pytest.raises(InvalidVerificationCode):
        user.verify_email(code.value, T0, LIMIT)
    assert not user.email_verified


def test_the_same_address_in_another_letter_case_is_still_the_address() -> None:
    user, _, code = requested(new_user("Ada.Lovelace@Example.com"))
    user.change_email(Email.parse("ada.lovelace@example.COM"), now=T0)

    assert user.verify_email(code.value, T0, LIMIT)


def test_each_wrong_code_is_counted_and_at_the_limit_even_the_right_one_is_refused() -> None:
    user, token, code = requested()
    for wrong in range(1, LIMIT + 1):
        assert not user.verify_email(other_code(code), T0, LIMIT)
        assert user.email_verification is not None
        assert user.email_verification.wrong_codes == wrong
    assert not user.events[1:]  # counting records no event

    with pytest.raises(VerificationCodeAttemptsExhausted):
        user.verify_email(code.value, T0, LIMIT)
    pending = user.email_verification
    assert pending is not None and pending.wrong_codes == LIMIT  # not counted beyond it
    # The link still works.
    assert user.verify_email(parse_token(token.value), T0, LIMIT)


def test_a_new_request_starts_the_count_again() -> None:
    user, _, code = requested()
    for _ in range(LIMIT):
        user.verify_email(other_code(code), T0, LIMIT)
    _, fresh = user.request_email_verification(T0 + timedelta(minutes=2), DAY)

    assert user.verify_email(fresh.value, T0 + timedelta(minutes=2), LIMIT)


def test_nothing_pending_refuses_both_ways() -> None:
    user = new_user()
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(issue_token(user.id).value), T0, LIMIT)
    with pytest.raises(InvalidVerificationCode):
        user.verify_email("123456", T0, LIMIT)


def test_disabling_voids_the_pending_verification() -> None:
    user, token, _ = requested()
    user.disable(T0, SessionPolicy(), [])

    assert user.email_verification is None
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0, LIMIT)


def test_an_address_marked_verified_needs_no_pending_verification() -> None:
    user, token, _ = requested()
    user.mark_email_verified(T0)

    assert user.email_verified and user.email_verification is None
    with pytest.raises(InvalidVerificationToken):
        user.verify_email(parse_token(token.value), T0, LIMIT)
