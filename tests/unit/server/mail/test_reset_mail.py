"""The password-reset message: its link, its headers, its wording, in any alphabet; no text the
registrant chose."""

from __future__ import annotations

import email
import email.policy
import email.utils
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest

from domain.ports import PasswordResetMail
from server.mail.reset_mail import build_reset_message
from tests.smtp_server import reset_token_from

SENDER = "Biome <no-reply@biome.example>"
TEMPLATE = "https://app.biome.example/reset-password?token={token}"
EXPIRES = datetime(2026, 11, 26, 4, 15, tzinfo=UTC)


def reset_mail(**changes: object) -> PasswordResetMail:
    fields: dict[str, object] = {
        "to": "ann@example.com",
        "token": "tok/en+with=odd&chars",
        "expires_at": EXPIRES,
    }
    fields.update(changes)
    return PasswordResetMail(**fields)  # type: ignore[arg-type]


def as_received(message: EmailMessage) -> EmailMessage:
    """The message as a mail client would read it: serialized, then parsed again."""
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_the_link_carries_the_url_quoted_token() -> None:
    message = build_reset_message(reset_mail(), sender=SENDER, link_template=TEMPLATE)

    text = text_of(as_received(message))

    assert "https://app.biome.example/reset-password?token=tok%2Fen%2Bwith%3Dodd%26chars" in text
    assert reset_token_from(as_received(message)) == "tok/en+with=odd&chars"


def test_the_token_replaces_the_placeholder_wherever_it_is_and_other_braces_stay() -> None:
    template = "https://app.example/{lang}/reset/{token}/confirm"

    message = build_reset_message(reset_mail(token="abc"), sender=SENDER, link_template=template)

    assert "https://app.example/{lang}/reset/abc/confirm" in text_of(as_received(message))


def test_the_headers_name_sender_recipient_subject_date_and_a_message_id() -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    message = as_received(build_reset_message(reset_mail(), sender=SENDER, link_template=TEMPLATE))

    assert message["From"] == SENDER
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Reset your password"
    sent_at = email.utils.parsedate_to_datetime(message["Date"])
    assert before <= sent_at <= datetime.now(UTC)
    assert message["Message-ID"].startswith("<")
    assert message["Message-ID"].endswith("@biome.example>")
    assert message.get_content_type() == "multipart/alternative"


def test_each_message_has_its_own_message_id() -> None:
    first = build_reset_message(reset_mail(), sender=SENDER, link_template=TEMPLATE)
    second = build_reset_message(reset_mail(), sender=SENDER, link_template=TEMPLATE)

    assert first["Message-ID"] != second["Message-ID"]


def test_the_body_greets_nobody_by_name_and_says_what_to_do_if_they_did_not_ask() -> None:
    text = text_of(
        as_received(build_reset_message(reset_mail(), sender=SENDER, link_template=TEMPLATE))
    )

    assert text.splitlines()[0] == "Hello,"
    assert "If you did not ask for this, ignore this message; your password stays as it is." in text


def test_the_expiry_is_shown_in_utc() -> None:
    in_paris = EXPIRES.astimezone(timezone(timedelta(hours=1)))

    message = build_reset_message(
        reset_mail(expires_at=in_paris), sender=SENDER, link_template=TEMPLATE
    )

    assert "until 2026-11-26 04:15 UTC" in text_of(as_received(message))


def test_the_html_part_says_the_same_with_the_link_escaped() -> None:
    template = "https://app.example/reset?a=1&token={token}"

    message = as_received(
        build_reset_message(reset_mail(token="abc"), sender=SENDER, link_template=template)
    )

    rich = message.get_body(preferencelist=("html",))
    assert rich is not None
    content = rich.get_content()
    assert '<a href="https://app.example/reset?a=1&amp;token=abc">' in content
    assert "a=1&token" not in content
    assert "If you did not ask for this, ignore this message" in content


def test_an_ascii_message_is_sent_unencoded_so_the_raw_file_shows_the_link() -> None:
    message = build_reset_message(reset_mail(token="a" * 64), sender=SENDER, link_template=TEMPLATE)

    raw = bytes(message)

    assert raw.isascii()
    assert b"Content-Transfer-Encoding: 7bit" in raw
    assert b"base64" not in raw and b"quoted-printable" not in raw
    assert b"\r\nhttps://app.biome.example/reset-password?token=" + b"a" * 64 + b"\r\n" in raw


def test_a_non_ascii_address_is_written_in_utf8_not_as_encoded_words() -> None:
    message = build_reset_message(
        reset_mail(to="zoë@exämple.com"), sender=SENDER, link_template=TEMPLATE
    )

    raw = bytes(message)

    assert "To: zoë@exämple.com\r\n".encode() in raw
    assert as_received(message)["To"] == "zoë@exämple.com"


@pytest.mark.parametrize(
    "template", ["https://app.example/reset", "https://app.example/{token}/{token}"]
)
def test_a_template_without_exactly_one_placeholder_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"\{token\} exactly once"):
        build_reset_message(reset_mail(), sender=SENDER, link_template=template)


def test_a_naive_expiry_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_reset_message(
            reset_mail(expires_at=datetime(2026, 11, 26, 4, 15)),
            sender=SENDER,
            link_template=TEMPLATE,
        )
