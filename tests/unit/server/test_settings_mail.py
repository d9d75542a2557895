"""Settings of security mail: a link template per kind (https and set, in production), the
product name, the folder of replacement templates, and the start that a broken one stops."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from server.from_settings import notifier
from server.mail.templates import MailTemplateError
from server.settings import Settings
from tests.mail_kit import mails, part, send
from tests.unit.server.test_settings import HTTPS_MAIL_LINKS, production, refusal

LINK_VARIABLES = sorted(HTTPS_MAIL_LINKS)


@pytest.mark.parametrize("variable", LINK_VARIABLES)
def test_every_link_template_must_hold_the_token_placeholder(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    message = refusal(monkeypatch, **{variable: "https://app.example.com/{token}/{token}"})

    assert message == f"invalid setting {variable}: must contain {{token}} exactly once"


@pytest.mark.parametrize("variable", LINK_VARIABLES)
def test_production_refuses_to_serve_without_each_link_set(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    production(monkeypatch, **{variable: ""})

    missing = Settings().unmet_serving_requirement()

    assert missing is not None
    assert missing.startswith(f"production needs {variable}, an https:// link to the ")


@pytest.mark.parametrize("variable", LINK_VARIABLES)
def test_production_refuses_each_link_that_is_not_https(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    production(monkeypatch, **{variable: "http://accounts.example.com/x?token={token}"})

    assert Settings().unmet_serving_requirement() == (
        f"production needs an https:// {variable}: the link carries a live token"
    )


def test_development_links_lead_to_distinct_local_pages() -> None:
    settings = Settings()

    links = [
        settings.password_reset_link_template,
        settings.email_verification_link_template,
        settings.email_change_link_template,
        settings.email_change_cancel_link_template,
    ]
    assert all(link.startswith("http://localhost:8080/") for link in links)
    assert len(set(links)) == 4
    assert settings.product_name == "Biome" and settings.mail_templates_dir is None


@pytest.mark.parametrize("name", [" Biome", "Biome\nBcc: x", "Bi\u200bome", "x" * 101])
def test_a_product_name_that_is_not_one_plain_line_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    message = refusal(monkeypatch, USER_SERVICE_PRODUCT_NAME=name)

    assert message.startswith("invalid setting USER_SERVICE_PRODUCT_NAME: ")


def take_the_one_message(outbox: Path) -> EmailMessage:
    """The one .eml file in ``outbox``, parsed; the file goes."""
    [path] = outbox.iterdir()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    path.unlink()
    return message


async def test_the_notifier_writes_each_kind_with_its_link_and_the_product_name(
    tmp_path: Path,
) -> None:
    settings = Settings(
        outbox_dir=tmp_path,
        product_name="Acme Cloud",
        password_reset_link_template="https://acme.example/reset/{token}",
        email_verification_link_template="https://acme.example/verify/{token}",
        email_change_link_template="https://acme.example/move/{token}",
        email_change_cancel_link_template="https://acme.example/undo/{token}",
    )
    built = notifier(settings)

    for kind, mail in mails(token="tok").items():
        await send(built, mail)
        message = take_the_one_message(tmp_path)
        page = {
            "password_reset": "reset",
            "lock_notice": "reset",
            "verification": "verify",
            "email_change": "move",
            "email_change_notice": "undo",
        }[kind]
        assert f"\nhttps://acme.example/{page}/tok\n" in part(message, "plain"), kind
        assert "Acme Cloud" in part(message, "html")


def test_a_broken_template_in_the_folder_stops_the_notifier_naming_the_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "verification.html").write_text("<p>{{ link }} {{ code }</p>")

    with pytest.raises(MailTemplateError, match=r"verification\.html, line 1: "):
        notifier(Settings(notifier="smtp", mail_templates_dir=tmp_path))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("relay password\n", "relay password"),  # `kubectl create secret --from-file` of echo's
        ("relay password\r\n", "relay password"),
        ("  relay password  ", "relay password"),
        ("relay password", "relay password"),
        ("\n", None),  # an empty file: no password, as if unset
    ],
)
def test_the_smtp_password_is_read_without_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    production(monkeypatch, USER_SERVICE_SMTP_PASSWORD=value)
    password = Settings().smtp_password
    assert (None if password is None else password.get_secret_value()) == expected
