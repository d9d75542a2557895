"""The mail templates: packaged with the service, replaceable file by file from an operator's
folder, tried out at start so that a broken replacement stops the start naming its file."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import jinja2
import pytest

from server.mail.templates import PACKAGED_DIR, TEMPLATE_NAMES, MailTemplateError, MailTemplates
from tests.mail_kit import LINK_OF_KIND, as_received, compose, composer, mails, part

ROOT = Path(__file__).resolve().parents[4]
VALUES = {
    "product": "Biome",
    "name": "Ann",
    "link": "https://app.example/x?token=abc",
    "expires": "2026-11-26 05:15 UTC",
}


def folder(tmp_path: Path, files: dict[str, str]) -> Path:
    """A templates folder holding ``files`` (name: content)."""
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    return tmp_path


def refusal(directory: Path) -> str:
    with pytest.raises(MailTemplateError) as raised:
        MailTemplates(directory)
    return str(raised.value)


def test_the_package_holds_exactly_the_templates_the_service_loads() -> None:
    assert {path.name for path in PACKAGED_DIR.iterdir()} == TEMPLATE_NAMES


def test_the_wheel_s_package_data_takes_every_template() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["server.mail"]

    for name in TEMPLATE_NAMES:
        assert any(fnmatch(f"templates/{name}", pattern) for pattern in patterns), name


def test_a_value_missing_at_render_time_is_an_error_not_an_empty_string() -> None:
    templates = MailTemplates()
    values = {key: value for key, value in VALUES.items() if key != "link"}

    with pytest.raises(jinja2.UndefinedError, match="'link' is undefined"):
        templates.render("password_reset", values)


def test_the_html_part_escapes_values_and_the_text_part_keeps_them() -> None:
    rendered = MailTemplates().render("password_reset", {**VALUES, "product": "<b>B&B</b>"})

    assert "<b>B&B</b>" in rendered.text
    assert "&lt;b&gt;B&amp;B&lt;/b&gt;" in rendered.html and "<b>" not in rendered.html


def test_a_file_in_the_folder_replaces_its_template_and_the_others_stay_packaged(
    tmp_path: Path,
) -> None:
    directory = folder(
        tmp_path,
        {
            "password_reset.txt": (
                "Hi {{ name or 'there' }}! New password for {{ product }}: {{ link }}\n"
            ),
        },
    )

    writer = composer(templates_dir=directory)

    reset = as_received(compose(mails(token="abc")["password_reset"], writer))
    link = LINK_OF_KIND["password_reset"].replace("{token}", "abc")
    assert part(reset, "plain") == f"Hi Ann! New password for Biome Accounts: {link}\n"
    assert "Someone, we hope you, asked to reset the password" in part(reset, "html")
    notice = as_received(compose(mails()["lock_notice"], writer))
    assert part(notice, "plain").startswith("Hello Ann,\n\nBy 2026-11-26 04:15 UTC")


def test_a_replaced_layout_frames_every_html_part(tmp_path: Path) -> None:
    directory = folder(
        tmp_path,
        {
            "base.html": (
                "<html><body><h1>{{ product }}</h1>{% block body %}{% endblock %}</body></html>"
            ),
        },
    )

    writer = composer(templates_dir=directory)

    for mail in mails().values():
        rich = part(as_received(compose(mail, writer)), "html")
        assert rich.startswith("<html><body><h1>Biome Accounts</h1>")


def test_a_subject_is_one_line_whatever_its_template(tmp_path: Path) -> None:
    directory = folder(
        tmp_path, {"password_reset.subject.txt": "{{ product }}:\n  reset\tyour password\n"}
    )

    message = as_received(compose(mails()["password_reset"], composer(templates_dir=directory)))

    assert message["Subject"] == "Biome Accounts: reset your password"


def test_a_syntax_error_is_refused_naming_the_file_and_line(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"lock_notice.html": "<p>\n{% if name %}Hello\n"})

    message = refusal(directory)

    assert message.startswith(f"mail template {directory / 'lock_notice.html'}, line ")
    assert "endif" in message


def test_an_undefined_value_is_refused_at_start_naming_the_file(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"verification.txt": "{{ link }} {{ code }} {{ first_name }}\n"})

    message = refusal(directory)

    assert f"mail template {directory / 'verification.txt'} does not render" in message
    assert "'first_name' is undefined" in message


def test_an_error_in_a_replaced_layout_names_the_layout(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"base.txt": "{{ company }}\n{% block body %}{% endblock %}\n"})

    assert f"mail template {directory / 'base.txt'} does not render" in refusal(directory)


def test_a_template_that_leaves_out_the_link_is_refused(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"email_change.html": "<p>Confirm, {{ name }}.</p>"})

    message = refusal(directory)

    assert message == (
        f"mail template {directory / 'email_change.html'} leaves out a value the mail needs: "
        "the link"
    )


def test_a_verification_template_that_leaves_out_the_code_is_refused(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"verification.txt": "{{ link }}\n"})

    assert refusal(directory).endswith(
        "verification.txt leaves out a value the mail needs: the code"
    )


def test_an_empty_subject_is_refused(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"verification.subject.txt": "{# nothing #}\n"})

    assert refusal(directory) == f"mail template {directory / 'verification.subject.txt'} is empty"


def test_the_sandbox_refuses_a_template_that_reaches_for_python_internals(tmp_path: Path) -> None:
    directory = folder(
        tmp_path,
        {
            "password_reset.txt": "{{ link }} {{ link.__class__.__mro__[1].__subclasses__() }}\n",
        },
    )

    message = refusal(directory)

    assert f"mail template {directory / 'password_reset.txt'} does not render" in message
    assert "SecurityError" in message


def test_a_template_that_fails_while_rendering_is_refused_naming_it(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"lock_notice.txt": "{{ link }} {{ 1 // 0 }}\n"})

    message = refusal(directory)

    assert message == (
        f"mail template {directory / 'lock_notice.txt'} does not render: "
        "ZeroDivisionError: integer division or modulo by zero"
    )


def test_a_file_that_replaces_no_template_is_refused(tmp_path: Path) -> None:
    directory = folder(tmp_path, {"pasword_reset.txt": "{{ link }}\n"})
    (tmp_path / ".hidden").write_text("editors and Kubernetes keep such files")

    message = refusal(directory)

    assert message.startswith(f"mail template {directory / 'pasword_reset.txt'} replaces no ")
    assert "password_reset.txt" in message


def test_a_folder_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "missing") == (
        f"mail template folder {tmp_path / 'missing'} is not a folder"
    )


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "email_change_notice.txt").write_bytes(b"Bonjour \xe9 {{ link }}\n")

    message = refusal(tmp_path)

    assert message.startswith(f"mail template {tmp_path / 'email_change_notice.txt'} cannot be ")
    assert "UnicodeDecodeError" in message
