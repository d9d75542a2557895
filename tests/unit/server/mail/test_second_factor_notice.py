"""The second-factor notice: says which kind of factor was added or removed, with no link and no
secret, in both parts; through the outbox like every other mail."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.events import SecondFactorKind
from domain.ports import SecondFactorNoticeMail
from server.mail.outbox import OutboxNotifier
from tests.mail_kit import PRODUCT, as_received, compose, composer, part


def notice(kind: SecondFactorKind, *, added: bool, name: str = "Ann") -> SecondFactorNoticeMail:
    return SecondFactorNoticeMail(to="ann@example.com", first_name=name, kind=kind, added=added)


@pytest.mark.parametrize(
    ("kind", "added", "subject", "says"),
    [
        (SecondFactorKind.TOTP, True, "A second factor was added to your account",
         "An authenticator app was added to your"),
        (SecondFactorKind.TOTP, False, "A second factor was removed from your account",
         "An authenticator app was removed from your"),
        (SecondFactorKind.PASSKEY, True, "A second factor was added to your account",
         "A passkey was added to your"),
    ],
)  # fmt: skip
def test_the_notice_names_the_kind_and_the_change_in_both_parts(
    kind: SecondFactorKind, added: bool, subject: str, says: str
) -> None:
    message = as_received(compose(notice(kind, added=added)))

    text, rich = part(message, "plain"), part(message, "html")
    assert message["Subject"] == subject
    assert text.startswith("Hello Ann,\n\n") and "<p>Hello Ann,</p>" in rich
    for content in (text, rich):
        assert says in " ".join(content.split())
        assert PRODUCT in content
        assert "http" not in content, "a notice carries no link"
    assert message["To"] == "ann@example.com"


def test_a_name_that_is_not_just_a_name_is_left_out() -> None:
    message = as_received(compose(notice(SecondFactorKind.TOTP, added=True, name="a.b http://x")))
    assert part(message, "plain").splitlines()[0] == "Hello,"


def test_the_notice_repr_names_no_address() -> None:
    assert "ann@" not in repr(notice(SecondFactorKind.TOTP, added=False))


async def test_the_outbox_writes_the_notice(tmp_path: Path) -> None:
    notifier = OutboxNotifier(directory=tmp_path / "out", composer=composer())

    await notifier.send_second_factor_notice(notice(SecondFactorKind.TOTP, added=True))

    (written,) = (tmp_path / "out").iterdir()
    assert b"A second factor was added" in written.read_bytes()
