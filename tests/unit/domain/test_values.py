"""Value objects accept what they should, refuse the rest, and never show a password."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.values import ClientDetails, Email, Password, PersonName, UserId


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


# --- client details ----------------------------------------------------------------------------


def test_a_user_agent_is_trimmed_and_kept_up_to_512_printable_characters() -> None:
    agent = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 é"
    assert ClientDetails.parse_user_agent(f"  {agent} ") == agent
    assert ClientDetails.parse_user_agent("") == ""
    assert ClientDetails.parse_user_agent("a" * 512) == "a" * 512


@pytest.mark.parametrize(
    "raw", ["a" * 513, "Mozilla\n/5.0", "Mozilla\x00", "evil\x1b[31m", "zero\u200bwidth", "\u202e"]
)
def test_a_user_agent_over_512_characters_or_not_printable_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue):
        ClientDetails.parse_user_agent(raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:DB8::0001", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0042", "2001:db8::42"),
        ("::1", "::1"),
        ("::FFFF:192.0.2.1", "::ffff:192.0.2.1"),
        ("", ""),
    ],
)
def test_an_ip_address_is_kept_in_canonical_form(raw: str, canonical: str) -> None:
    assert ClientDetails.parse_ip_address(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3",
        " 192.0.2.1",
        "192.0.2.1:443",
        "192.0.2.0/24",
        "fe80::1%eth0",
        "[::1]",
        "١٩٢.0.2.1",  # Arabic-Indic digits
        "localhost",
        "1" * 100,
    ],
)
def test_anything_but_a_bare_ip_address_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue):
        ClientDetails.parse_ip_address(raw)


def test_a_device_label_is_trimmed_and_kept_up_to_64_printable_characters() -> None:
    assert ClientDetails.parse_device_label("  Anna's phone ") == "Anna's phone"
    assert ClientDetails.parse_device_label("é" * 64) == "é" * 64
    for raw in ("x" * 65, "tab\there", "line\nbreak", "\x7f"):
        with pytest.raises(InvalidValue):
            ClientDetails.parse_device_label(raw)
