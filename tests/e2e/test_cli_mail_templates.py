"""``user-service serve`` with an operator's mail templates: a broken one stops the start with one
line naming the file, before anything else is started."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import cli_environment, run_cli


async def test_serve_refuses_a_broken_mail_template_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "verification.html").write_text("<p>{{ link }} {{ code }</p>\n")

    code, stdout, stderr = await run_cli(
        "serve", environment=cli_environment(USER_SERVICE_MAIL_TEMPLATES_DIR=str(tmp_path))
    )

    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        f"user-service: cannot serve: mail template {tmp_path / 'verification.html'}, "
        "line 1: unexpected '}'"
    )
    assert "DynamoDB" not in stdout  # refused before the embedded DynamoDB started


async def test_serve_refuses_a_template_folder_that_does_not_exist(tmp_path: Path) -> None:
    code, _, stderr = await run_cli(
        "serve",
        environment=cli_environment(USER_SERVICE_MAIL_TEMPLATES_DIR=str(tmp_path / "missing")),
    )

    assert code == 1
    assert f"mail template folder {tmp_path / 'missing'} is not a folder" in stderr
