"""Each kind of security mail as its reader gets it: a plain-text and an HTML part saying the same,
the product name, a greeting by first name, the link of its kind, the expiry in UTC (and the code
of a verification); nothing else the registrant chose, and nothing that could pass for the
service's own words."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from domain.ports import PasswordResetMail
from server.mail.links import LinkTemplates, token_link
from tests.mail_kit import (
    CODE,
    KINDS,
    LINK_OF_KIND,
    LINKS,
    PRODUCT,
    SENDER,
    as_received,
    compose,
    composer,
    mails,
    part,
    with_name,
)
from tests.smtp_server import reset_token_from, verification_code_from

TOKEN = "tok/en+odd=chars&more"
QUOTED = "tok%2Fen%2Bodd%3Dchars%26more"
SUBJECTS = {
    "password_reset": "Reset your password",
    "lock_notice": "Your account was locked after failed sign-ins",
    "verification": "Confirm your email address",
    "email_change": "Confirm your new email address",
    "email_change_notice": "Your account's email address is about to change",
}
HOSTILE_NAMES = [
    "<script>alert(1)</script>",
    "Ada\r\nBcc: mallory@evil.example",
    "Ada\nYour account is suspended",
    "Ada\u2028Your account is suspended",  # a line separator: not a control character
    "Ada https://evil.example/login",
    "evil.example",
    "Ada (call +1 555 0100)",
    "mallory@evil.example",
    "Ada\u202eelgooG",  # a right-to-left override
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_mail_has_a_text_and_an_html_part_with_product_greeting_link_and_expiry(
    kind: str,
) -> None:
    message = as_received(compose(mails(token=TOKEN)[kind]))

    link = LINK_OF_KIND[kind].replace("{token}", QUOTED)
    text, rich = part(message, "plain"), part(message, "html")
    assert message["Subject"] == SUBJECTS[kind]
    assert text.startswith("Hello Ann,\n\n")
    assert "<p>Hello Ann,</p>" in rich
    assert f"\n{link}\n" in text
    assert f'<a href="{link.replace("&", "&amp;")}"' in rich
    for content in (text, rich):
        assert PRODUCT in content
        assert "until 2026-11-26 05:15 UTC" in content
    assert reset_token_from(message) == TOKEN


def test_every_kind_leads_to_its_own_page() -> None:
    pages = {
        kind: re.search(r"https://\S+\?token=", part(as_received(compose(mail)), "plain"))
        for kind, mail in mails().items()
    }

    assert {kind: match and match.group() for kind, match in pages.items()} == {
        kind: template.replace("{token}", "") for kind, template in LINK_OF_KIND.items()
    }


def test_the_verification_mail_carries_the_code_in_both_parts() -> None:
    message = as_received(compose(mails()["verification"]))

    assert verification_code_from(message) == CODE
    assert CODE in part(message, "html")
    assert "The link and the code work once" in part(message, "plain")


def test_the_lock_notice_says_when_the_account_locked() -> None:
    message = as_received(compose(mails()["lock_notice"]))

    assert "By 2026-11-26 04:15 UTC, several sign-ins" in " ".join(part(message, "plain").split())


def test_the_email_change_notice_leaves_out_the_new_address_its_requester_chose() -> None:
    message = as_received(compose(mails()["email_change_notice"]))

    for content in (part(message, "plain"), part(message, "html")):
        assert "evil.example" not in content and "m***" not in content


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_name_the_greeting_has_none(kind: str) -> None:
    message = as_received(compose(with_name(mails()[kind], "")))

    assert part(message, "plain").splitlines()[0] == "Hello,"
    assert "<p>Hello,</p>" in part(message, "html")


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("kind", ["password_reset", "verification"])
def test_a_name_that_is_not_just_a_name_is_left_out_of_every_part_and_header(
    kind: str, name: str
) -> None:
    sent = compose(with_name(mails()[kind], name))
    message = as_received(sent)

    text, rich = part(message, "plain"), part(message, "html")
    assert text.splitlines()[0] == "Hello,"
    assert "<p>Hello,</p>" in rich
    for fragment in ("script", "Bcc", "suspended", "evil", "555", "elgoo"):
        assert fragment not in text and fragment not in rich
    headers = bytes(sent).split(b"\r\n\r\n")[0]
    assert b"Bcc" not in headers and b"evil" not in headers
    assert message["To"] == "ann@example.com"


@pytest.mark.parametrize(
    ("name", "shown", "escaped"),
    [
        ("D'Arcy", "D'Arcy", "D&#39;Arcy"),
        ("Zoë", "Zoë", "Zoë"),
        ("Jean-Luc", "Jean-Luc", "Jean-Luc"),
        ("J. R. R.", "J. R. R.", "J. R. R."),
        ("  Ada \u00a0 Maria ", "Ada Maria", "Ada Maria"),
        ("李小龍", "李小龍", "李小龍"),
    ],
)
def test_a_name_is_greeted_as_written_escaped_in_html(name: str, shown: str, escaped: str) -> None:
    message = as_received(compose(with_name(mails()["password_reset"], name)))

    assert part(message, "plain").splitlines()[0] == f"Hello {shown},"
    assert f"<p>Hello {escaped},</p>" in part(message, "html")


def test_the_product_name_and_the_link_are_escaped_in_html_and_plain_in_text() -> None:
    links = LinkTemplates(
        password_reset="https://app.example/reset?a=1&token={token}",
        email_verification=LINKS.email_verification,
        email_change=LINKS.email_change,
        email_change_cancel=LINKS.email_change_cancel,
    )
    writer = composer(links=links, product='Biome <b>"&"</b>')

    message = as_received(compose(mails(token="abc")["password_reset"], writer))

    text, rich = part(message, "plain"), part(message, "html")
    assert "https://app.example/reset?a=1&token=abc" in text
    assert 'Biome <b>"&"</b>' in text
    assert '<a href="https://app.example/reset?a=1&amp;token=abc">' in rich
    assert "Biome &lt;b&gt;&#34;&amp;&#34;&lt;/b&gt;" in rich
    assert "a=1&token" not in rich and "<b>" not in rich


def test_the_token_replaces_the_placeholder_wherever_it_is_and_other_braces_stay() -> None:
    template = "https://app.example/{lang}/reset/{token}/confirm"

    assert token_link("abc", template) == "https://app.example/{lang}/reset/abc/confirm"


@pytest.mark.parametrize(
    "template", ["https://app.example/reset", "https://app.example/{token}/{token}"]
)
def test_a_link_template_without_exactly_one_placeholder_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"email_change link template must contain \{token\}"):
        LinkTemplates(
            password_reset=LINKS.password_reset,
            email_verification=LINKS.email_verification,
            email_change=template,
            email_change_cancel=LINKS.email_change_cancel,
        )


def test_the_headers_name_sender_recipient_subject_date_and_a_message_id() -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    first = as_received(compose(mails()["password_reset"]))
    second = as_received(compose(mails()["password_reset"]))

    assert first["From"] == SENDER and first["To"] == "ann@example.com"
    sent_at = email.utils.parsedate_to_datetime(first["Date"])
    assert before <= sent_at <= datetime.now(UTC)
    assert first["Message-ID"].startswith("<")
    assert first["Message-ID"].endswith("@biome.example>")
    assert first["Message-ID"] != second["Message-ID"]


def test_the_expiry_is_shown_in_utc_whatever_its_zone() -> None:
    in_paris = datetime(2026, 11, 26, 6, 15, tzinfo=timezone(timedelta(hours=1)))
    mail = PasswordResetMail(to="ann@example.com", token="abc", expires_at=in_paris)

    assert "until 2026-11-26 05:15 UTC" in part(as_received(compose(mail)), "plain")


def test_a_naive_expiry_is_refused() -> None:
    mail = PasswordResetMail(to="a@example.com", token="abc", expires_at=datetime(2026, 11, 26))

    with pytest.raises(ValueError, match="timezone-aware"):
        compose(mail)


def test_an_ascii_message_is_sent_unencoded_so_the_raw_file_shows_the_link() -> None:
    raw = bytes(compose(mails(token="a" * 64)["password_reset"]))

    assert raw.isascii()
    assert b"Content-Transfer-Encoding: 7bit" in raw
    assert b"base64" not in raw and b"quoted-printable" not in raw
    assert b"\r\nhttps://app.biome.example/reset-password?token=" + b"a" * 64 + b"\r\n" in raw


def test_a_non_ascii_address_and_name_are_written_in_utf8() -> None:
    message = compose(mails(to="zoë@exämple.com", name="Zoë")["verification"])

    raw = bytes(message)

    assert "To: zoë@exämple.com\r\n".encode() in raw
    assert "Hello Zoë,".encode() in raw
    received = as_received(message)
    assert received["To"] == "zoë@exämple.com"
    assert part(received, "plain").startswith("Hello Zoë,")


@pytest.mark.parametrize("kind", KINDS)
def test_no_token_or_code_shows_in_a_mail_s_repr(kind: str) -> None:
    mail = mails(token=TOKEN)[kind]

    assert TOKEN not in repr(mail) and CODE not in repr(mail)
    assert "tok" not in repr(composer())


def test_a_line_longer_than_smtp_carries_is_encoded(tmp_path: Path) -> None:
    (tmp_path / "base.html").write_text("<p>" + "x" * 2000 + "</p>{% block body %}{% endblock %}")

    sent = compose(mails(token="abc")["password_reset"], composer(templates_dir=tmp_path))

    raw = bytes(sent)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    rich = part(as_received(sent), "html")
    assert rich.startswith("<p>" + "x" * 2000 + "</p>")
    assert b"\r\nhttps://app.biome.example/reset-password?token=abc\r\n" in raw  # text stays 7bit
