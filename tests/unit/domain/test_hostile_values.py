"""Hostile spellings the fuzzing found: a user id must be a UUID, not whatever int() accepts."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.secret_tokens import parse_token
from domain.values import UserId

CANONICAL = "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"
FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + digit) for digit in range(10)))

# Each passed uuid.UUID: its int(..., 16) takes a sign, "0x", underscores and non-ASCII digits,
# and it drops any "uuid:" and any number of braces.
NOT_UUIDS = {
    "plus-sign": "+" + "0" * 31,
    "hex-prefix": "0x" + "0" * 30,
    "upper-hex-prefix": "0X" + "f" * 30,
    "underscores": "0_" * 15 + "00",
    "fullwidth-digits": CANONICAL.translate(FULLWIDTH),
    "arabic-indic-digits": CANONICAL.translate(ARABIC_INDIC),
    "bare-uuid-prefix": "uuid:" + CANONICAL,
    "double-braces": "{{" + CANONICAL + "}}",
}
INT_QUIRKS = ("plus-sign", "hex-prefix", "upper-hex-prefix", "underscores")


@pytest.mark.parametrize("raw", NOT_UUIDS.values(), ids=NOT_UUIDS.keys())
def test_user_id_refuses_what_only_int_would_read_as_hex(raw: str) -> None:
    with pytest.raises(InvalidValue):
        UserId.parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        CANONICAL,
        CANONICAL.upper(),
        f" \t{CANONICAL}\n",
        "{" + CANONICAL + "}",
        "urn:uuid:" + CANONICAL,
        CANONICAL.replace("-", ""),
    ],
)
def test_user_id_still_takes_the_usual_spellings_of_a_uuid(raw: str) -> None:
    assert UserId.parse(raw).value == CANONICAL


@pytest.mark.parametrize("kind", INT_QUIRKS)
def test_a_token_whose_user_part_is_no_uuid_is_not_ours(kind: str) -> None:
    with pytest.raises(InvalidValue):
        parse_token(f"{NOT_UUIDS[kind]}.{'A' * 43}")
