"""``user-service export``, ``import`` and ``migrate`` as real subprocesses against moto_server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb

from domain.use_cases.sessions import authenticate
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0
from tests.data_tool_helpers import (
    PASSWORD,
    POLICY,
    drop_tables,
    fresh_tables,
    get_user_item,
    put_version_1_user,
    scan_all,
    sign_up,
)
from tests.e2e.harness import Service
from tests.e2e.tool_runs import ROOT, run_tool, tool_environment
from tests.fakes import FakeAccessTokenIssuer, FakePasswordHasher, FixedClock, recorded_lock_notices
from tests.fault_proxy import FaultProxy

RUN_SECONDS = 60.0
MAX_RENAMES = 400
USERS_TO_MIGRATE = 16

pytestmark = pytest.mark.slow


@pytest.fixture
def client(dynamodb_client: Any) -> Any:
    """The session moto's client (tests/conftest.py), under the short name these tests use."""
    return dynamodb_client


@pytest_asyncio.fixture
async def source(client: Any) -> AsyncIterator[TableNames]:
    tables = await fresh_tables(client, TableNames())
    yield tables
    await drop_tables(client, tables)


@pytest_asyncio.fixture
async def target(client: Any, source: TableNames) -> AsyncIterator[TableNames]:
    tables = await fresh_tables(client, source)
    yield tables
    await drop_tables(client, tables)


def environment(endpoint: str, tables: TableNames) -> dict[str, str]:
    return tool_environment(
        AWS_ENDPOINT_URL_DYNAMODB=endpoint,
        USER_SERVICE_TABLE_NAME=tables.users,
        USER_SERVICE_EMAIL_TABLE_NAME=tables.emails,
        USER_SERVICE_EVENTS_TABLE_NAME=tables.events,
        USER_SERVICE_SESSIONS_TABLE_NAME=tables.sessions,
    )


async def user_service(endpoint: str, tables: TableNames, *args: str) -> tuple[int, str, str]:
    return await run_tool(
        "server", *args, environment=environment(endpoint, tables), kill_after=RUN_SECONDS
    )


async def signed_up_users(client: Any, tables: TableNames, count: int) -> list[str]:
    clock = FixedClock(T0)
    users = [await sign_up(client, tables, clock, f"cli{n}@example.com") for n in range(count)]
    return [user.user_id for user in users]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def exists(path: Path) -> bool:
    return path.exists()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def user_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["format"] == "user-service-export"
    assert lines[-1]["end"] is True and lines[-1]["users"] == len(lines) - 2
    return lines[1:-1]


async def test_export_and_import_copy_the_users_into_new_tables_where_they_sign_in(
    moto_endpoint: str, client: Any, source: TableNames, target: TableNames, tmp_path: Path
) -> None:
    await signed_up_users(client, source, 4)
    dump = tmp_path / "users.jsonl"

    code, stdout, stderr = await user_service(moto_endpoint, source, "export", str(dump))

    assert code == 0, stderr
    assert "exported 4 users" in stdout
    assert mode_of(dump) == 0o600
    assert not exists(Path(f"{dump}.partial"))
    assert len(user_lines(dump)) == 4
    assert "\r" not in stderr, "no progress bar when standard error is not a terminal"

    code, stdout, stderr = await user_service(moto_endpoint, target, "import", str(dump))

    assert code == 0, stdout + stderr
    assert "4 created" in stdout
    assert await scan_all(client, target.emails) == await scan_all(client, source.emails)
    # The users exactly, but for their pending verifications: never exported (a million guesses
    # recover a code from its salted hash).
    source_users = await scan_all(client, source.users)
    assert all("EmailVerification" in item for item in source_users)
    assert await scan_all(client, target.users) == [
        {k: v for k, v in item.items() if k != "EmailVerification"} for item in source_users
    ]
    again = await user_service(moto_endpoint, target, "import", str(dump))
    assert again[0] == 0 and "4 already present at the same revision" in again[1]
    tokens = await authenticate(
        DynamoUnitOfWork(client, target),
        FakePasswordHasher(),
        FakeAccessTokenIssuer(),
        FixedClock(T0),
        POLICY,
        recorded_lock_notices(),
        email="cli2@example.com",
        password=PASSWORD,
    )
    assert tokens.user.email.value == "cli2@example.com"


async def test_import_with_mark_verified_writes_users_with_verified_addresses(
    moto_endpoint: str, client: Any, source: TableNames, target: TableNames, tmp_path: Path
) -> None:
    users = await signed_up_users(client, source, 3)
    dump = tmp_path / "users.jsonl"
    assert (await user_service(moto_endpoint, source, "export", str(dump)))[0] == 0
    assert all("EmailVerified" not in line["user"] for line in user_lines(dump))

    code, stdout, stderr = await user_service(
        moto_endpoint, target, "import", str(dump), "--mark-verified"
    )

    assert code == 0, stdout + stderr
    assert "3 created" in stdout
    for user_id in users:
        item = await get_user_item(client, target, user_id)
        assert item is not None
        assert item["EmailVerified"] == {"BOOL": True} and "EmailVerifiedAt" in item
        assert "EmailVerification" not in item  # the pending one is void once verified
        source_item = await get_user_item(client, source, user_id)
        assert source_item is not None and source_item["Revision"] == item["Revision"]
        assert "EmailVerified" not in source_item
    # Without the flag the addresses stay as the file has them.
    plain = await fresh_tables(client, source)
    try:
        assert (await user_service(moto_endpoint, plain, "import", str(dump)))[0] == 0
        item = await get_user_item(client, plain, users[0])
        assert item is not None and "EmailVerified" not in item
    finally:
        await drop_tables(client, plain)


async def test_an_export_killed_midway_is_resumed_to_the_same_users(
    moto_endpoint: str, client: Any, source: TableNames, tmp_path: Path
) -> None:
    users = await signed_up_users(client, source, 6)
    dump = tmp_path / "users.jsonl"
    partial = Path(f"{dump}.partial")
    with FaultProxy(moto_endpoint) as proxy:
        # Each guard read takes a while: the export is still running when it is killed.
        proxy.delay(0.4, operations=["GetItem"])
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "server", "export", str(dump), "--page-size", "1"),
            cwd=ROOT,
            env=environment(proxy.url, source),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            for _ in range(int(RUN_SECONDS / 0.05)):
                if _lines_in(partial) >= 3:
                    break
                await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.wait(), 10)
    written = _lines_in(partial)
    assert 3 <= written < 8, "killed after some users and before the end"
    assert not exists(dump)
    assert mode_of(partial) == 0o600, "readable by its owner only from the start"

    code, stdout, stderr = await user_service(
        moto_endpoint, source, "export", str(dump), "--resume"
    )

    assert code == 0, stderr
    assert f"({written - 1} of them before resuming)" in stdout
    exported = [line["user"]["Id"]["S"] for line in user_lines(dump)]
    assert sorted(exported) == sorted(users), "each user exactly once"
    assert mode_of(dump) == 0o600


def _lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


async def test_an_export_file_cut_mid_line_resumes_to_the_same_lines(
    moto_endpoint: str, client: Any, source: TableNames, tmp_path: Path
) -> None:
    await signed_up_users(client, source, 5)
    whole = tmp_path / "whole.jsonl"
    assert (await user_service(moto_endpoint, source, "export", str(whole)))[0] == 0
    lines = read(whole).splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    partial = Path(f"{cut}.partial")
    write(partial, "".join(lines[:3]) + lines[3][: len(lines[3]) // 2])

    code, _, stderr = await user_service(moto_endpoint, source, "export", str(cut), "--resume")

    assert code == 0, stderr
    assert user_lines(cut) == user_lines(whole)
    assert not exists(partial)
    assert mode_of(cut) == 0o600, "made private even though the partial file was not"
    done = await user_service(moto_endpoint, source, "export", str(cut), "--resume")
    assert done[0] == 0 and "already complete" in done[2]


async def test_an_export_refuses_to_overwrite_an_interrupted_one_without_resume(
    moto_endpoint: str, source: TableNames, tmp_path: Path
) -> None:
    dump = tmp_path / "users.jsonl"
    write(Path(f"{dump}.partial"), "")

    code, _, stderr = await user_service(moto_endpoint, source, "export", str(dump))

    assert code == 1
    assert "--resume" in stderr


async def test_an_import_reports_malformed_lines_and_conflicts_by_line_and_imports_the_rest(
    moto_endpoint: str, client: Any, source: TableNames, target: TableNames, tmp_path: Path
) -> None:
    await signed_up_users(client, source, 3)
    dump = tmp_path / "users.jsonl"
    assert (await user_service(moto_endpoint, source, "export", str(dump)))[0] == 0
    lines = read(dump).splitlines(keepends=True)
    first, broken, taken = (json.loads(line)["user"] for line in lines[1:4])
    lines[2] = '{"user": "broken"}\n'
    write(dump, "".join(lines))
    owner = await sign_up(client, target, FixedClock(T0), taken["Email"]["S"])

    code, stdout, _ = await user_service(moto_endpoint, target, "import", str(dump))

    assert code == 1
    assert "1 created" in stdout
    assert "line 3: malformed" in stdout
    assert f"line 4: user {taken['Id']['S']}: the email belongs to another user" in stdout
    assert owner.user_id in stdout
    assert "the end line counts 3 users, the file holds 2" in stdout
    imported = {item["Id"]["S"] for item in await scan_all(client, target.users)}
    assert imported == {first["Id"]["S"], owner.user_id}
    assert broken["Id"]["S"] not in imported


async def test_an_import_into_tables_that_do_not_exist_stops_at_the_first_user(
    moto_endpoint: str, client: Any, source: TableNames, tmp_path: Path
) -> None:
    await signed_up_users(client, source, 3)
    dump = tmp_path / "users.jsonl"
    assert (await user_service(moto_endpoint, source, "export", str(dump)))[0] == 0
    missing = TableNames(
        users="Missing-users",
        emails="Missing-emails",
        events="Missing-events",
        sessions="Missing-sessions",
    )

    code, stdout, _ = await user_service(
        moto_endpoint, missing, "import", str(dump), "--concurrency", "1"
    )

    assert code == 1
    assert "ResourceNotFoundException" in stdout
    assert stdout.count("line ") == 1, stdout
    assert "run the same import again" in stdout


async def test_an_export_to_standard_output_writes_the_lines_there_and_the_report_elsewhere(
    moto_endpoint: str, client: Any, source: TableNames
) -> None:
    await signed_up_users(client, source, 2)

    code, stdout, stderr = await user_service(moto_endpoint, source, "export", "-")

    assert code == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert lines[0]["format"] == "user-service-export" and lines[-1] == {
        "end": True,
        "users": 2,
        "finished_at": lines[-1]["finished_at"],
    }
    assert "exported 2 users" in stderr


async def test_migrate_upgrades_old_items_and_a_dry_run_writes_nothing(
    moto_endpoint: str, client: Any, source: TableNames
) -> None:
    ids = [
        await put_version_1_user(client, source, f"v1-{n}@example.com", with_revision=n % 2 == 0)
        for n in range(3)
    ]
    before = await scan_all(client, source.users)

    code, stdout, stderr = await user_service(moto_endpoint, source, "migrate", "--dry-run")

    assert code == 0, stderr
    assert "would upgrade 3" in stdout and "dry run: nothing was written" in stdout
    assert await scan_all(client, source.users) == before

    code, stdout, stderr = await user_service(moto_endpoint, source, "migrate")

    assert code == 0, stderr
    assert "scanned 3, upgraded 3, already current 0" in stdout
    for user_id in ids:
        item = await get_user_item(client, source, user_id)
        assert item is not None and item["SchemaVersion"] == {"N": "5"}


async def test_migrate_marks_verified_the_accounts_created_before_the_cutoff(
    moto_endpoint: str, client: Any, source: TableNames
) -> None:
    ids = [
        await put_version_1_user(client, source, f"vouched-{n}@example.com", with_revision=True)
        for n in range(2)
    ]
    naive = await user_service(
        moto_endpoint, source, "migrate", "--mark-verified-before", "2026-12-07T00:00:00"
    )
    assert naive[0] == 2 and "UTC offset" in naive[2]

    code, stdout, stderr = await user_service(
        moto_endpoint, source, "migrate", "--mark-verified-before", "2999-01-01T00:00:00Z"
    )

    assert code == 0, stderr
    assert "upgraded 2" in stdout and "marked 2 addresses verified" in stdout
    for user_id in ids:
        item = await get_user_item(client, source, user_id)
        assert item is not None and item["EmailVerified"] == {"BOOL": True}


async def test_migrate_while_the_service_serves_renames_of_the_same_users_loses_no_update(
    moto_endpoint: str, service: Service
) -> None:
    ids = [
        await put_version_1_user(
            service.dynamodb, service.tables, f"busy{n}@example.com", with_revision=False
        )
        for n in range(USERS_TO_MIGRATE)
    ]
    migrated = asyncio.Event()
    last: dict[str, tuple[str, int]] = {}

    async def keep_renaming(user_id: str) -> None:
        # From once the migration has begun until it has ended (and at least once, bounded).
        version = 5  # put_version_1_user's, for an item from before revisions
        for n in range(MAX_RENAMES):
            reply = await service.stub.UpdateProfile(
                pb.UpdateProfileRequest(id=user_id, first_name=f"N{n}", expected_version=version)
            )
            version = reply.version
            last[user_id] = (f"N{n}", version)
            if migrated.is_set():
                return
            await asyncio.sleep(0.02)  # leave moto (one request at a time) to the migration too

    async def migrate() -> tuple[int, str, str]:
        try:
            return await user_service(moto_endpoint, service.tables, "migrate", "--page-size", "1")
        finally:
            migrated.set()

    migration = asyncio.create_task(migrate())
    try:
        # moto scans in key order: the smallest id is the first the migration upgrades.
        await _until_upgraded(service, min(ids))
        await asyncio.gather(*(keep_renaming(user_id) for user_id in ids))
    finally:
        code, stdout, stderr = await migration  # never left running past the test

    assert code == 0, stderr
    assert f"scanned {USERS_TO_MIGRATE}" in stdout
    for user_id in ids:
        user = await service.stub.GetUser(pb.GetUserRequest(id=user_id))
        assert (user.first_name, user.version) == last[user_id]
        assert user.version - 5 == int(user.first_name[1:]) + 1, "every rename landed"
    items = await scan_all(service.dynamodb, service.tables.users)
    assert {item["SchemaVersion"]["N"] for item in items} == {"5"}


async def _until_upgraded(service: Service, user_id: str) -> None:
    for _ in range(int(RUN_SECONDS / 0.01)):
        item = await get_user_item(service.dynamodb, service.tables, user_id)
        if item is not None and item["SchemaVersion"]["N"] == "5":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the migration upgraded nothing")


async def test_on_a_terminal_the_export_shows_a_progress_line_redrawn_in_place(
    moto_endpoint: str, client: Any, source: TableNames, tmp_path: Path
) -> None:
    await signed_up_users(client, source, 3)
    controller, device = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "server", "export", str(tmp_path / "users.jsonl")),
            cwd=ROOT,
            env=environment(moto_endpoint, source),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=device,
        )
        os.close(device)
        shown = await asyncio.wait_for(asyncio.to_thread(_read_until_closed, controller), 60)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        os.close(controller)

    assert "\rexport: 3 users in" in shown


def _read_until_closed(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
