"""Page tokens round-trip, and any token the service did not make is refused."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.pagination import PageTokenCodec
from domain.values import UserId

KEY = b"k" * 32


def test_page_token_round_trips_the_last_key() -> None:
    codec = PageTokenCodec(KEY)
    user_id = UserId.new()
    assert codec.decode(codec.encode(user_id)) == user_id


@pytest.mark.parametrize("token", ["garbage", "!!!", "AAAA", "", "x" * 5000, "\x00\x01"])
def test_page_token_refuses_garbage(token: str) -> None:
    with pytest.raises(InvalidValue):
        PageTokenCodec(KEY).decode(token)


def test_page_token_refuses_a_token_with_one_flipped_character() -> None:
    codec = PageTokenCodec(KEY)
    token = codec.encode(UserId.new())
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    with pytest.raises(InvalidValue):
        codec.decode(flipped)


def test_page_token_refuses_a_token_signed_with_another_key() -> None:
    token = PageTokenCodec(b"o" * 32).encode(UserId.new())
    with pytest.raises(InvalidValue):
        PageTokenCodec(KEY).decode(token)


def test_page_token_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        PageTokenCodec(b"short")


@pytest.mark.parametrize("spelling", ["{}\n", "{}=", "!{}", "{}~~~~"])
def test_page_token_refuses_any_other_spelling_of_a_valid_token(spelling: str) -> None:
    # The base64 decoder alone would skip characters outside its alphabet and tolerate padding.
    codec = PageTokenCodec(KEY)
    token = codec.encode(UserId.new())
    other = spelling.format(token)
    with pytest.raises(InvalidValue):
        codec.decode(other)
