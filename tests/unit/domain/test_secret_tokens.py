"""Opaque tokens: '<user id>.<secret>' (reset) or '<user id>.<session id>.<secret>' (refresh),
256 random bits, only a SHA-256 is kept, compared safely."""

from __future__ import annotations

import hashlib

import pytest

from domain.errors import InvalidValue
from domain.secret_tokens import (
    hash_code,
    hash_token,
    issue_code,
    issue_token,
    parse_code,
    parse_token,
    same_hash,
)
from domain.values import UserId

USER = UserId("3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b")


def test_an_issued_token_names_its_user_and_carries_a_256_bit_secret() -> None:
    token = issue_token(USER)

    user_part, dot, secret = token.value.partition(".")

    assert (user_part, dot) == (USER.value, ".")
    assert len(secret) >= 43  # 32 bytes in URL-safe base64
    assert token.token_hash == hashlib.sha256(token.value.encode()).hexdigest()


def test_two_issued_tokens_never_repeat() -> None:
    tokens = {issue_token(USER).value for _ in range(100)}
    assert len(tokens) == 100


def test_an_issued_token_never_shows_in_its_repr() -> None:
    token = issue_token(USER)
    assert token.value not in repr(token) and token.token_hash not in repr(token)
    assert repr(token) == "IssuedToken(***)"


def test_parsing_an_issued_token_gives_its_user_and_the_stored_hash() -> None:
    token = issue_token(USER)

    lookup = parse_token(token.value)

    assert lookup.user_id == USER
    assert lookup.token_hash == token.token_hash


def test_surrounding_white_space_is_ignored_when_parsing() -> None:
    token = issue_token(USER)
    assert parse_token(f"  {token.value}\n").token_hash == token.token_hash


def test_a_token_whose_user_part_differs_hashes_differently() -> None:
    token = issue_token(USER)
    forged = token.value.replace(USER.value, USER.value.upper(), 1)

    lookup = parse_token(forged)

    assert lookup.user_id == USER  # the id is read case-insensitively ...
    assert lookup.token_hash != token.token_hash  # ... but the hash covers every character


def test_an_empty_token_is_refused_as_empty() -> None:
    with pytest.raises(InvalidValue, match="must not be empty"):
        parse_token("   ")


@pytest.mark.parametrize(
    "raw",
    [
        "no-dot-at-all",
        f"{USER.value}.",
        "not-a-uuid.secret",
        f"{USER.value}.sécret",
        f"{USER.value}." + "x" * 200,
        ".secret",
    ],
    ids=["no-dot", "no-secret", "bad-user-id", "non-ascii", "too-long", "no-user"],
)
def test_a_token_this_service_cannot_have_issued_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="not a token this service issued"):
        parse_token(raw)


def test_hashes_compare_equal_only_when_they_are_equal() -> None:
    stored = hash_token("a")
    assert same_hash(stored, hash_token("a"))
    assert not same_hash(stored, hash_token("b"))
    assert not same_hash(None, stored)


SESSION = "7d0c1c55-2b7e-4a4e-9f0e-3a1b2c3d4e5f"


def test_a_refresh_token_names_its_user_and_its_session() -> None:
    token = issue_token(USER, SESSION)

    user_part, session_part, secret = token.value.split(".")
    lookup = parse_token(token.value)

    assert (user_part, session_part) == (USER.value, SESSION)
    assert len(secret) >= 43
    assert (lookup.user_id, lookup.session_id) == (USER, SESSION)
    assert lookup.token_hash == token.token_hash


def test_a_token_of_the_older_form_names_no_session() -> None:
    assert parse_token(issue_token(USER).value).session_id is None


@pytest.mark.parametrize(
    "raw",
    [
        f"{USER.value}.not-a-uuid.{'A' * 43}",
        f"{USER.value}..{'A' * 43}",
        f"{USER.value}.{SESSION}.{'A' * 43}.more",
        f"{USER.value}.{SESSION}.",
    ],
)
def test_a_refresh_token_with_a_malformed_session_part_is_not_ours(raw: str) -> None:
    with pytest.raises(InvalidValue):
        parse_token(raw)


def test_the_session_id_is_read_in_its_canonical_form() -> None:
    lookup = parse_token(f"{USER.value}.{SESSION.upper()}.{'A' * 43}")
    assert lookup.session_id == SESSION


def test_a_verification_code_is_six_digits_drawn_uniformly_hashed_under_its_own_salt() -> None:
    codes = [issue_code() for _ in range(2000)]

    assert all(len(code.value) == 6 and code.value.isdigit() for code in codes)
    assert all(code.code_hash == hash_code(code.value, code.salt) for code in codes)
    assert len({code.salt for code in codes}) == len(codes)
    # Leading zeros are kept: about a tenth of codes start with 0.
    assert 100 < sum(code.value.startswith("0") for code in codes) < 320
    assert all(code.value not in repr(code) and code.salt not in repr(code) for code in codes)


def test_the_same_code_under_two_salts_hashes_differently() -> None:
    first, second = issue_code(), issue_code()
    assert hash_code("123456", first.salt) != hash_code("123456", second.salt)


@pytest.mark.parametrize("raw", ["123456", " 123456 ", "000000"])
def test_a_presented_code_is_its_six_ascii_digits(raw: str) -> None:
    assert parse_code(raw) == raw.strip()


@pytest.mark.parametrize(
    "raw",
    [
        "12345",
        "1234567",
        "12345a",
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
        "\u0661\u0662\u0663\u0664\u0665\u0666",  # Arabic-Indic digits
        "123 456",
        "-12345",
        "+12345",
    ],
)
def test_a_code_of_another_form_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="6 digits"):
        parse_code(raw)


def test_an_empty_code_is_refused_as_empty() -> None:
    with pytest.raises(InvalidValue, match="must not be empty"):
        parse_code("  ")
