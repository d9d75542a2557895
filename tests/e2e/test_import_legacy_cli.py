"""``user-service import-legacy`` as a real subprocess into the tables a running service serves:
the report, the exit codes, and the imported users signing in with their old passwords."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from persistence.schema import TableNames
from tests.e2e.auth_helpers import sign_in
from tests.e2e.harness import Service
from tests.e2e.tool_runs import run_tool, tool_environment
from tools.legacy_import_bench import ASPNET_COLUMNS, aspnet_v2_hash, aspnet_v3_hash

pytestmark = pytest.mark.slow

RUN_SECONDS = 60.0
HEADER = ",".join(ASPNET_COLUMNS)


async def import_legacy(endpoint: str, tables: TableNames, *args: str) -> tuple[int, str, str]:
    environment = tool_environment(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        USER_SERVICE_TABLE_NAME=tables.users,
        USER_SERVICE_EMAIL_TABLE_NAME=tables.emails,
        USER_SERVICE_EVENTS_TABLE_NAME=tables.events,
        USER_SERVICE_SESSIONS_TABLE_NAME=tables.sessions,
    )
    return await run_tool(
        "server", "import-legacy", *args, environment=environment, kill_after=RUN_SECONDS
    )


def aspnet_row(user_id: str, email: str, password_hash: str) -> str:
    return f"{user_id},{email},True,{password_hash},,True,0,Grace,Hopper,2019-03-04 05:06:07"


async def test_imported_users_sign_in_over_a_channel_with_their_old_passwords(
    moto_endpoint: str, service: Service, tmp_path: Path
) -> None:
    v3_id, v2_id = str(uuid.uuid4()), "legacy-17"
    v3 = aspnet_v3_hash("net7-Password!", salt=uuid.uuid4().bytes)
    v2 = aspnet_v2_hash("identity2-Password!", salt=uuid.uuid4().bytes)
    path = tmp_path / "AspNetUsers.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                aspnet_row(v3_id, "Grace@Example.com", v3),
                aspnet_row(v2_id, "old@example.com", v2),
                aspnet_row(str(uuid.uuid4()), "GRACE@example.COM", v3),
            ]
        )
        + "\n",
        encoding="utf-8",
    )

    code, stdout, stderr = await import_legacy(
        moto_endpoint, service.tables, "--dry-run", str(path)
    )

    assert code == 1, stderr
    assert (_count(stdout, "rows ok"), _count(stdout, "rows refused")) == (1, 2)
    assert "row 1: Email: the same email (without regard to case) as row 3" in stdout
    assert "row 3: Email: the same email (without regard to case) as row 1" in stdout
    assert v3 not in stdout + stderr and v2 not in stdout + stderr
    assert await service.scan(service.tables.users) == [], "a dry run writes nothing"

    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:3]) + "\n")
    code, stdout, stderr = await import_legacy(moto_endpoint, service.tables, str(path))

    assert code == 0, stdout + stderr
    assert _count(stdout, "imported") == 2
    new_id = str(uuid.uuid5(uuid.UUID("5b0c7c35-5d2f-4c43-9d0e-3f6f4b1f2a17"), v2_id))
    assert f"row 2: legacy-17 -> {new_id}" in stdout
    assert "\r" not in stderr, "no progress bar when standard error is not a terminal"
    stored = {
        item["Id"]["S"]: item["PasswordHash"]["S"]
        for item in await service.scan(service.tables.users)
    }
    assert stored == {v3_id: v3, new_id: v2}, "each hash stored exactly as the source holds it"

    again = await import_legacy(moto_endpoint, service.tables, str(path))
    assert again[0] == 0 and _count(again[1], "already imported (skipped)") == 2

    signed_in = await sign_in(service, "grace@example.com", "net7-Password!")
    assert signed_in.user.id == v3_id and signed_in.user.email_verified
    assert (await sign_in(service, "old@example.com", "identity2-Password!")).user.id == new_id
    rehashed = {
        item["Id"]["S"]: item["PasswordHash"]["S"]
        for item in await service.scan(service.tables.users)
    }
    assert all(value.startswith("$argon2id$") for value in rehashed.values())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"Id,Email\n1,a@example.com\n", "missing required columns"),
        (
            (HEADER + "\n" + aspnet_row("1", "ren\xe9@example.com", "x")).encode("cp1252"),
            "not UTF-8",
        ),
    ],
)
async def test_a_file_that_cannot_be_used_exits_non_zero_and_writes_nothing(
    moto_endpoint: str, service: Service, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(content)

    code, _, stderr = await import_legacy(moto_endpoint, service.tables, str(path))

    assert code == 1
    assert message in stderr and "nothing imported" in stderr
    assert await service.scan(service.tables.users) == []


def _count(report: str, label: str) -> int:
    for line in report.splitlines():
        if line.strip().startswith(label + " ") or line.strip().startswith(label + "  "):
            return int(line.split()[-1])
    raise AssertionError(f"no {label!r} line in:\n{report}")
