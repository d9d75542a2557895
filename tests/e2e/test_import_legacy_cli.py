"""``user-service import-legacy`` as a real subprocess into the tables a running service serves:
the report, the exit codes, and the imported users signing in with their old passwords."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from datatools.legacy_rows import LEGACY_ID_NAMESPACE
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


V3_PASSWORD, V2_PASSWORD = "net7-Password!", "identity2-Password!"
NEW_ID_OF_LEGACY_17 = str(uuid.uuid5(LEGACY_ID_NAMESPACE, "legacy-17"))


def aspnet_file(path: Path, v3_id: str, *, with_duplicate: bool) -> tuple[str, str]:
    """An AspNetUsers export: a V3 user, a V2 user whose id is not a UUID, and (optionally) a
    third row whose email is the first's in other case. The two hashes."""
    v3 = aspnet_v3_hash(V3_PASSWORD, salt=uuid.uuid4().bytes)
    v2 = aspnet_v2_hash(V2_PASSWORD, salt=uuid.uuid4().bytes)
    rows = [
        HEADER,
        aspnet_row(v3_id, "Grace@Example.com", v3),
        aspnet_row("legacy-17", "old@example.com", v2),
    ]
    if with_duplicate:
        rows.append(aspnet_row(str(uuid.uuid4()), "GRACE@example.COM", v3))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return v3, v2


async def stored_hashes(service: Service) -> dict[str, str]:
    items = await service.scan(service.tables.users)
    return {item["Id"]["S"]: item["PasswordHash"]["S"] for item in items}


async def test_a_dry_run_names_the_duplicates_then_a_run_stores_each_hash_exactly_as_given(
    moto_endpoint: str, service: Service, tmp_path: Path
) -> None:
    path, v3_id = tmp_path / "AspNetUsers.csv", str(uuid.uuid4())
    v3, v2 = aspnet_file(path, v3_id, with_duplicate=True)

    code, stdout, stderr = await import_legacy(
        moto_endpoint, service.tables, "--dry-run", str(path)
    )

    assert code == 1, stderr
    assert (_count(stdout, "rows ok"), _count(stdout, "rows refused")) == (1, 2)
    assert "row 1: Email: the same email (without regard to case) as row 3" in stdout
    assert "row 3: Email: the same email (without regard to case) as row 1" in stdout
    assert v3 not in stdout + stderr and v2 not in stdout + stderr
    assert await service.scan(service.tables.users) == [], "a dry run writes nothing"

    v3, v2 = aspnet_file(path, v3_id, with_duplicate=False)
    code, stdout, stderr = await import_legacy(moto_endpoint, service.tables, str(path))

    assert code == 0, stdout + stderr
    assert _count(stdout, "imported") == 2
    assert f"row 2: legacy-17 -> {NEW_ID_OF_LEGACY_17}" in stdout
    assert "\r" not in stderr, "no progress bar when standard error is not a terminal"
    assert await stored_hashes(service) == {v3_id: v3, NEW_ID_OF_LEGACY_17: v2}

    again = await import_legacy(moto_endpoint, service.tables, str(path))

    assert again[0] == 0 and _count(again[1], "already imported (skipped)") == 2
    assert await stored_hashes(service) == {v3_id: v3, NEW_ID_OF_LEGACY_17: v2}


async def test_imported_users_sign_in_over_a_channel_with_their_old_passwords_and_are_rehashed(
    moto_endpoint: str, service: Service, tmp_path: Path
) -> None:
    path, v3_id = tmp_path / "AspNetUsers.csv", str(uuid.uuid4())
    aspnet_file(path, v3_id, with_duplicate=False)
    code, stdout, stderr = await import_legacy(moto_endpoint, service.tables, str(path))
    assert code == 0, stdout + stderr

    signed_in = await sign_in(service, "grace@example.com", V3_PASSWORD)
    assert signed_in.user.id == v3_id and signed_in.user.email_verified
    assert (await sign_in(service, "old@example.com", V2_PASSWORD)).user.id == NEW_ID_OF_LEGACY_17
    assert all(value.startswith("$argon2id$") for value in (await stored_hashes(service)).values())


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
