"""The one security-mail builder: plain text and HTML alternatives saying the same, everything
interpolated escaped in the HTML, the link's token never in repr."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime
from email.message import EmailMessage

import pytest

from server.mail.security_message import SecurityText, build_security_message, utc_minute

SENDER = "Biome <no-reply@biome.example>"


def text(**changes: object) -> SecurityText:
    fields: dict[str, object] = {
        "subject": "Something <happened> & more",
        "before_link": ["Hello,", 'A <b>bold</b> claim & an "quote".'],
        "link": 'https://app.example/x?a=1&t=ab"c<d>',
        "after_link": ["Bye."],
    }
    fields.update(changes)
    return SecurityText(**fields)  # type: ignore[arg-type]


def received(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body(preferencelist=(kind,))
    assert body is not None and body.get_content_type() == f"text/{kind}"
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_a_message_has_a_plain_part_then_an_html_part() -> None:
    message = received(build_security_message(text(), sender=SENDER, to="ann@example.com"))

    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    plain = part(message, "plain")
    assert plain.splitlines()[0] == "Hello,"
    assert 'A <b>bold</b> claim & an "quote".' in plain
    assert 'https://app.example/x?a=1&t=ab"c<d>' in plain


def test_the_html_part_escapes_every_paragraph_the_link_and_the_subject() -> None:
    message = received(build_security_message(text(), sender=SENDER, to="ann@example.com"))

    rich = part(message, "html")

    assert "<b>" not in rich and "&lt;b&gt;bold&lt;/b&gt;" in rich
    assert "claim &amp; an &quot;quote&quot;." in rich
    assert '<a href="https://app.example/x?a=1&amp;t=ab&quot;c&lt;d&gt;">' in rich
    assert "<title>Something &lt;happened&gt; &amp; more</title>" in rich


def test_the_link_never_shows_in_repr() -> None:
    assert "t=ab" not in repr(text())


def test_times_are_shown_to_the_minute_in_utc_and_naive_ones_refused() -> None:
    assert utc_minute(datetime.fromisoformat("2026-11-26T05:15:59+01:00")) == "2026-11-26 04:15 UTC"
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_minute(datetime(2026, 11, 26, 4, 15))
