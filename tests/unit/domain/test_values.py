"""Value objects accept what they should, refuse the rest, and never show a password."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.values import Email, Password, PersonName, UserId


@pytest.mark.parametrize(
    "raw",
    [
        "ada@example.com",
        "Ada.Lovelace+tag@Example.COM",
        "  ada@example.com  ",
        "ünï@exämple.de",
        "a@b.co",
    ],
)
def test_email_accepts_ordinary_addresses(raw: str) -> None:
    assert Email.parse(raw).value == raw.strip()


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plain",
        "a@b",
        "@example.com",
        "ada@",
        "a b@example.com",
        "ada@@example.com",
        "ada@exa mple.com",
        "ada@-example.com",
        "ada@example-.com",
        ".ada@example.com",
        "ada..l@example.com",
        "ada\x00@example.com",
        "ada\n@example.com",
        "ada\u200b@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_email_refuses_malformed_addresses(raw: str) -> None:
    with pytest.raises(InvalidValue):
        Email.parse(raw)


def test_email_keeps_display_form_and_compares_case_insensitively_by_normalized_form() -> None:
    email = Email.parse(" Ada.Lovelace@Example.COM ")
    assert email.value == "Ada.Lovelace@Example.COM"
    assert email.normalized == "ada.lovelace@example.com"
    assert Email.parse("ADA.LOVELACE@EXAMPLE.COM").normalized == email.normalized


def test_email_normalized_form_folds_unicode_case() -> None:
    assert (
        Email.parse("STRASSE@example.de").normalized == Email.parse("straße@example.de").normalized
    )


def test_person_name_is_trimmed_and_bounded() -> None:
    assert PersonName.parse("  Ada ").value == "Ada"
    assert PersonName.parse("x" * 100).value == "x" * 100
    for raw in ["", "   ", "x" * 101, "Ada\x00", "A\x07da"]:
        with pytest.raises(InvalidValue):
            PersonName.parse(raw)


def test_password_policy_bounds_length_and_refuses_nul() -> None:
    assert Password.parse("correct horse").value == "correct horse"
    assert Password.parse("x" * 128)
    for raw in ["", "short", "1234567", "x" * 129, "password\x00"]:
        with pytest.raises(InvalidValue):
            Password.parse(raw)


def test_password_never_shows_its_value() -> None:
    password = Password.parse("correct horse battery")
    assert "correct" not in repr(password)
    assert "correct" not in str(password)
    assert "correct" not in f"{password!r} {password}"


def test_user_id_is_canonical_lower_case_uuid() -> None:
    assert (
        UserId.parse(" 3F2B8A3E-1C4D-4E5F-9A6B-7C8D9E0F1A2B ").value
        == "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"
    )
    assert UserId.new() != UserId.new()
    for raw in ["", "42", "not-a-uuid", "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2"]:
        with pytest.raises(InvalidValue):
            UserId.parse(raw)
