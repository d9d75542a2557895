"""The load tool (tools.load): a CI-sized run against an instance of its own; its safety rules."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import pytest

from tests.e2e.harness import Service
from tests.e2e.tool_runs import run_tool, tool_environment
from tools.load.__main__ import main
from tools.load.accounts import Accounts
from tools.load.mix import METHODS, parse_mix
from tools.load.stats import Stats
from tools.load.target import TargetRefused, loopback_target
from tools.load.verify import verify_accounts
from tools.load.workload import Plan, Workload

CI_RUN_RPCS = 3000
CI_RUN_DURATION_SECONDS = 150  # the tool's own limit, far above what the run needs
# Above every bound the tool has (start, load, verification, stop): only stops a hung run.
CI_RUN_TIMEOUT_SECONDS = 420.0


def load_environment(moto_endpoint: str) -> dict[str, str]:
    """The test's environment without service settings, on the session's moto, fresh tables."""
    suffix = uuid4().hex[:8]
    return tool_environment(
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        USER_SERVICE_TABLE_NAME=f"Users-load-{suffix}",
        USER_SERVICE_EMAIL_TABLE_NAME=f"UserEmails-load-{suffix}",
        USER_SERVICE_LOG_LEVEL="WARNING",
    )


async def run_load_tool(*args: str, environment: dict[str, str]) -> tuple[int, str, str]:
    return await run_tool(
        "tools.load", *args, environment=environment, kill_after=CI_RUN_TIMEOUT_SECONDS
    )


@pytest.mark.slow
async def test_a_ci_sized_load_run_ends_without_unexpected_statuses_or_lost_users(
    moto_endpoint: str, tmp_path: Path
) -> None:
    summary_file = tmp_path / "load.json"

    code, stdout, stderr = await run_load_tool(
        "--spawn",
        f"--count={CI_RUN_RPCS}",
        "--concurrency=16",
        f"--duration={CI_RUN_DURATION_SECONDS}",
        "--seed=20260405",
        f"--json={summary_file}",
        environment=load_environment(moto_endpoint),
    )

    assert summary_file.exists(), stdout + stderr
    summary = json.loads(summary_file.read_text())
    assert summary["unexpected"] == 0, summary["unexpected_samples"]
    assert summary["lost_users"] == 0, summary["verification_problems"]
    assert (summary["rpcs"], summary["stopped_by"]) == (CI_RUN_RPCS, "count")
    assert summary["registered_users"] > 0
    assert summary["verified_users"] == summary["registered_users"]
    # The deliberate conflicts happened, each answered as predicted (one winner, ABORTED).
    assert {
        "UpdateProfile ABORTED",
        "RefreshSession ABORTED",
        "RegisterUser ALREADY_EXISTS",
    } <= set(summary["expected_non_ok"])
    assert summary["server_exit_code"] == 0
    assert code == 0, stdout + stderr
    table_rows = {line.split()[0] for line in stdout.splitlines() if line.strip()}
    assert set(METHODS) <= table_rows
    assert set(summary["methods"]) == set(METHODS)
    assert stdout.rstrip().endswith("PASS")
    assert "load: " in stderr  # the progress line


@pytest.mark.parametrize(
    "target",
    [
        "192.0.2.1:50051",
        "0.0.0.0:50051",
        "[2001:db8::1]:50051",
        "user-service.invalid:50051",
        "dns:///x:1",
    ],
)
def test_the_load_tool_refuses_a_target_that_is_not_loopback(
    target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--target", target, "--count", "1"])

    assert exit_.value.code == 2
    assert "refusing target" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["127.0.0.1:50051", "127.9.8.7:1", "[::1]:50051", "localhost:8"])
def test_a_loopback_target_is_accepted(target: str) -> None:
    assert loopback_target(target) == target


def test_a_spawned_instance_refuses_a_dynamodb_endpoint_on_another_machine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("USER_SERVICE_DYNAMODB_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://192.0.2.1:8000")  # TEST-NET-1

    with pytest.raises(SystemExit) as exit_:
        main(["--spawn", "--count", "1"])

    assert exit_.value.code == 2
    assert "refusing DynamoDB endpoint" in capsys.readouterr().err


def test_a_target_that_is_not_host_and_port_is_refused() -> None:
    with pytest.raises(TargetRefused):
        loopback_target("127.0.0.1")


@pytest.mark.slow
async def test_the_verification_pass_reports_users_missing_by_id_or_by_email(
    service: Service,
) -> None:
    accounts = Accounts()
    plan = Plan(
        count=40,
        concurrency=4,
        duration=60,
        rpc_timeout=10,
        mix=parse_mix("RegisterUser=1,Authenticate=0,ChangePassword=0"),
        race_fraction=0.0,
        duplicate_fraction=0.0,
        seed=7,
    )
    await Workload(service.stub, plan, Stats(), accounts).run()
    assert len(accounts.all) >= 3
    gone_item, gone_guard = accounts.all[0], accounts.all[1]
    await service.dynamodb.delete_item(
        TableName=service.tables.users, Key={"Id": {"S": gone_item.user_id}}
    )
    await service.dynamodb.delete_item(
        TableName=service.tables.emails, Key={"Email": {"S": gone_guard.email}}
    )

    verification = await verify_accounts(
        service.stub, accounts.all, concurrency=4, rpc_timeout=10, within=60, seed=7
    )

    assert verification.users == len(accounts.all)
    assert verification.failed_users == 2
    assert any(gone_item.user_id in problem for problem in verification.problems)
    assert any(gone_guard.user_id in problem for problem in verification.problems)
