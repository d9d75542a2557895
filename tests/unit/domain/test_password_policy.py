"""New passwords: no common ones (bundled list, any letter case), not the account's own address."""

from __future__ import annotations

import pytest

from domain.errors import InvalidValue
from domain.password_policy import check_new_password, common_passwords
from domain.values import Email, Password

EMAIL = Email.parse("Ada.Lovelace@Example.com")


def test_the_bundled_list_holds_about_twenty_thousand_passwords_read_once() -> None:
    assert 19_000 <= len(common_passwords()) <= 20_000
    assert common_passwords() is common_passwords()
    assert "password1" in common_passwords()


@pytest.mark.parametrize("raw", ["password1", "PassWord1", "qwertyuiop", "ILOVEYOU"])
def test_a_common_password_is_refused_in_any_letter_case(raw: str) -> None:
    with pytest.raises(InvalidValue, match="too common"):
        check_new_password(Password.parse(raw), email=EMAIL)


@pytest.mark.parametrize(
    "raw", ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace"]
)
def test_the_accounts_own_address_or_its_local_part_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="email address"):
        check_new_password(Password.parse(raw), email=EMAIL)


@pytest.mark.parametrize("raw", ["Zebra-Quill-42", "correct horse battery staple"])
def test_an_uncommon_password_is_accepted(raw: str) -> None:
    check_new_password(Password.parse(raw), email=EMAIL)


def test_the_address_of_another_account_is_just_a_password() -> None:
    check_new_password(Password.parse("grace.hopper"), email=EMAIL)
