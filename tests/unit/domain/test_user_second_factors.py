"""Second factors on the aggregate: a TOTP code works once within one step of drift, a recovery
code once in any spelling; a refused code changes nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from domain.errors import InvalidSecondFactorCode
from domain.events import RecoveryCodeUsed, SecondFactorKind
from domain.second_factors import (
    RECOVERY_CODE_COUNT,
    TotpFactor,
    hash_recovery_code,
    issue_recovery_codes,
    normalize_recovery_code,
)
from domain.user import User
from tests.builders import T0, new_user, state_of
from tests.fakes import FakeTotpCodes

STEP = timedelta(seconds=30)
CODES = FakeTotpCodes()


def with_totp(user: User | None = None) -> User:
    user = user or new_user()
    user.totp = TotpFactor(CODES.new_secret().sealed, confirmed_at=T0)
    user.events.clear()
    return user


def code_at(user: User, moment: object) -> str:
    assert user.totp is not None
    return CODES.code_at(user.totp.sealed_secret, moment)  # type: ignore[arg-type]


def assert_refused_unchanged(user: User, attempt: object) -> None:
    before = state_of(user)
    with pytest.raises(InvalidSecondFactorCode):
        attempt()  # type: ignore[operator]
    assert state_of(user) == before and user.events == []


def test_second_factor_kinds_name_totp_only_once_it_is_confirmed() -> None:
    user = new_user()
    assert user.second_factor_kinds() == frozenset()
    assert with_totp(user).second_factor_kinds() == frozenset({SecondFactorKind.TOTP})


@pytest.mark.parametrize("drift", [-1, 0, 1])
def test_a_code_of_the_current_step_or_one_either_side_is_accepted_and_remembered(
    drift: int,
) -> None:
    user = with_totp()
    now = T0 + 100 * STEP

    user.use_totp_code(code_at(user, now + drift * STEP), now, CODES)

    assert user.totp is not None and user.totp.last_used_step is not None
    assert user.events == [], "a code accepted records no event"
    assert not user.touched, "nor a new version"


@pytest.mark.parametrize("drift", [-3, -2, 2, 3])
def test_a_code_two_or_more_steps_away_is_refused(drift: int) -> None:
    user = with_totp()
    now = T0 + 100 * STEP
    code = code_at(user, now + drift * STEP)
    if code in {code_at(user, now + d * STEP) for d in (-1, 0, 1)}:
        pytest.skip("the same six digits came up within the window by chance")

    assert_refused_unchanged(user, lambda: user.use_totp_code(code, now, CODES))


def test_a_code_is_accepted_once_and_an_earlier_steps_code_after_it_never() -> None:
    user = with_totp()
    now = T0 + 100 * STEP
    user.use_totp_code(code_at(user, now), now, CODES)

    assert_refused_unchanged(user, lambda: user.use_totp_code(code_at(user, now), now, CODES))
    earlier = code_at(user, now - STEP)
    assert_refused_unchanged(user, lambda: user.use_totp_code(earlier, now, CODES))
    # The next step's code is still good, once.
    user.use_totp_code(code_at(user, now + STEP), now + STEP, CODES)


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "abcdef", "12345a", "١٢٣٤٥٦", "12 34 5", "1" * 65, "+12345", "-12345"],
)
def test_malformed_codes_are_refused_as_wrong_ones_are(code: str) -> None:
    user = with_totp()

    assert_refused_unchanged(user, lambda: user.use_totp_code(code, T0, CODES))


def test_a_code_spaced_for_reading_is_accepted() -> None:
    user = with_totp()
    digits = code_at(user, T0)
    user.use_totp_code(f" {digits[:3]} {digits[3:]} ", T0, CODES)


def test_a_totp_code_is_refused_while_totp_is_off() -> None:
    user = new_user()
    user.events.clear()
    assert_refused_unchanged(user, lambda: user.use_totp_code("123456", T0, CODES))


def test_recovery_codes_carry_80_bits_grouped_and_only_their_hashes_are_kept() -> None:
    issued = issue_recovery_codes("user-1")

    assert len(issued.codes) == len(set(issued.codes)) == RECOVERY_CODE_COUNT
    for code, code_hash in zip(issued.codes, issued.hashes, strict=True):
        assert len(code) == 19 and code.count("-") == 3  # xxxx-xxxx-xxxx-xxxx: 16 x 5 bits
        assert code_hash == hash_recovery_code("user-1", normalize_recovery_code(code))
        assert code.replace("-", "") not in code_hash
    assert "***" in repr(issued) and issued.codes[0] not in repr(issued)


def spend_ready(user: User) -> tuple[str, ...]:
    issued = issue_recovery_codes(user.id.value)
    user.recovery_code_hashes = issued.hashes
    user.events.clear()
    return issued.codes


@pytest.mark.parametrize(
    "spell", [str, str.upper, lambda c: c.replace("-", ""), lambda c: c.replace("-", " ").title()]
)
def test_a_recovery_code_is_accepted_in_any_case_with_or_without_dashes_and_spaces(
    spell: object,
) -> None:
    user = new_user()
    codes = spend_ready(user)

    user.use_recovery_code(spell(codes[3]), T0)  # type: ignore[operator]

    assert user.recovery_codes_remaining == RECOVERY_CODE_COUNT - 1
    assert user.events == [RecoveryCodeUsed(user.id.value, T0, remaining=9)]
    assert not user.touched


def test_a_recovery_code_works_once() -> None:
    user = new_user()
    codes = spend_ready(user)
    user.use_recovery_code(codes[0], T0)
    user.events.clear()

    assert_refused_unchanged(user, lambda: user.use_recovery_code(codes[0], T0))
    user.use_recovery_code(codes[1], T0)
    assert user.recovery_codes_remaining == 8


@pytest.mark.parametrize(
    "code",
    ["", "0000-0000-0000-0000", "abcd", "iiii-llll-oooo-uuuu", "x" * 65, "é" * 16, "12345678"],
)
def test_a_wrong_or_malformed_recovery_code_is_refused(code: str) -> None:
    user = new_user()
    spend_ready(user)

    assert_refused_unchanged(user, lambda: user.use_recovery_code(code, T0))


def test_another_users_recovery_code_is_refused() -> None:
    user, other = new_user(), new_user("grace@example.com")
    spend_ready(user)
    others = spend_ready(other)

    assert_refused_unchanged(user, lambda: user.use_recovery_code(others[0], T0))


def test_the_user_repr_shows_no_secret_nor_hash() -> None:
    user = with_totp()
    spend_ready(user)
    assert user.totp is not None
    text = repr(user)
    assert user.totp.sealed_secret.value not in text
    assert all(code_hash not in text for code_hash in user.recovery_code_hashes)
    assert dataclasses.replace(user.totp).sealed_secret.value not in repr(user.totp)
