"""The benchmark harness (tools.bench) in its tiny --quick mode: every row measured, every goal
judged, the JSON and the Markdown written. A benchmark is a benchmark: no figure is asserted."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tool_runs import run_tool, tool_environment
from tools.bench.__main__ import main, service_hash_workers
from tools.bench.plan import QUICK
from tools.bench.profile_layers import LAYER_NAMES

ROW_NAMES = (
    "floor",
    "floor (guard + user)",
    "GetUser",
    "GetUserByEmail",
    "ListUsers",
    "RegisterUser",
    "Authenticate",
    "RefreshSession",
)
# The CPU rows on the keep-alive stand-in (tools.bench.standin): floors, limits, the service.
STANDIN_ROW_NAMES = (
    "stand-in: floor",
    "stand-in: floor (guard + user)",
    "stand-in: limit GetUser",
    "stand-in: limit GetUserByEmail",
    "stand-in: limit RefreshSession",
    "stand-in: GetUser",
    "stand-in: GetUserByEmail",
    "stand-in: RefreshSession",
)
STANDIN_SERVICE_ROWS = ("stand-in: GetUser", "stand-in: GetUserByEmail", "stand-in: RefreshSession")
CONCURRENCIES = (1, 16)
GOALS = (
    "GetUser CPU",
    "GetUserByEmail CPU",
    "GetUser CPU vs limit",
    "GetUserByEmail CPU vs limit",
    "RefreshSession CPU",
    "GetUser at scale",
    "GetUserByEmail at scale",
    "ListUsers at scale",
    "Event loop",
    "Event loop, no DynamoDB",
    "Start-up",
    "Idle memory",
    "Flat memory",
    "RegisterUser at scale, embedded DynamoDB",
    "ListUsers at scale, embedded DynamoDB",
    # Capacity units per RPC (tools.bench.capacity), judged against the issue's goals.
    "GetUser units",
    "GetUserByEmail units",
    "RefreshSession units",
    "Authenticate units",
    "Authenticate wrong password units",
    "RefreshSession flat in sessions",
    "Authenticate flat in sessions",
    "LogoutAll flat in sessions",
    "DisableUser flat in sessions",
    "ChangePassword flat in sessions",
    "Unread index writes",
)
# The event loop under sign-ins, on the stand-in: the goal's probe and the two that tell causes
# apart (tools.bench.loop_protection).
LOOP_PROBES = ("GetUser", "GetJwks (no DynamoDB)", "floor (no hashing)")
# The capacity scenarios of issue 15's RPCs in the quick form (its heavy user: 5 sessions).
ISSUE_15_SCENARIOS = (
    "RegisterUser, unverified, with its verification mail",
    "VerifyEmail, link token",
    "VerifyEmail, code",
    "VerifyEmail, wrong code",
    "ResendVerification",
    "RequestEmailChange",
    "ConfirmEmailChange",
    "ListSessions, 1 session",
    "ListSessions, 5 sessions",
    "EndSession, 1 session",
    "EndSession, 5 sessions",
)
# Far above what --quick needs (well under a minute alone); only stops a hung run.
RUN_TIMEOUT_SECONDS = 400.0


async def run_bench(*args: str) -> tuple[int, str, str]:
    return await run_tool(
        "tools.bench", *args, environment=tool_environment(), kill_after=RUN_TIMEOUT_SECONDS
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


@pytest.mark.slow
async def test_a_quick_bench_run_measures_every_row_and_judges_every_goal(tmp_path: Path) -> None:
    code, stdout, stderr = await run_bench("--quick", f"--out={tmp_path}", "--seed=20260405")

    assert code == 0, stderr[-4000:]
    document = json.loads((tmp_path / "results.json").read_text())
    rows = {(row["name"], row["concurrency"]): row for row in document["rows"]}
    assert set(rows) == {(name, c) for name in ROW_NAMES for c in CONCURRENCIES}
    for key, row in rows.items():
        assert row["rpcs"] > 0 and row["errors"] == {}, (key, row)
        figures = ("throughput", "p50_ms", "p99_ms", "server_cpu_ms_per_rpc", "ratio_to_floor")
        assert all(_is_number(row[name]) for name in figures), (key, row)
    # CPU is read from the process that served each row (an idle one would show none).
    assert all(row["server_cpu_ms_per_rpc"] > 0 for row in rows.values()), rows
    assert sum(row["backend_cpu_ms_per_rpc"] for row in rows.values()) > 0

    standin = {(row["name"], row["concurrency"]): row for row in document["standin_rows"]}
    assert set(standin) == {(name, c) for name in STANDIN_ROW_NAMES for c in CONCURRENCIES}
    for key, row in standin.items():
        assert row["rpcs"] > 0 and row["errors"] == {}, (key, row)
        assert row["server_cpu_ms_per_rpc"] > 0 and _is_number(row["ratio_to_limit"]), (key, row)
    for name in STANDIN_SERVICE_ROWS:  # each service row: its ratio to its limit and its floor
        assert all(_is_number(standin[name, c]["ratio_to_floor"]) for c in CONCURRENCIES), name

    small, large = (point["users"] for point in document["scale"])
    assert small >= 200 and large == 400  # the small table also holds the registered users
    for point in document["scale"]:
        assert set(point["rows"]) == {"GetUser", "GetUserByEmail", "ListUsers"}
        for row in point["rows"].values():
            assert row["errors"] == {} and row["rpcs"] > 0 and row["server_cpu_ms_per_rpc"] > 0
    _check_loop_rows(document["loop_protection"], hash_workers=service_hash_workers(QUICK))
    assert len(document["startup"]["seconds"]) == 1
    assert document["startup"]["idle_rss_bytes"][0] > 0
    assert document["long_run"]["row"]["rpcs"] > 0 and document["long_run"]["rss_at_end"] > 0
    embedded = document["embedded_scale"]
    assert embedded["speedups"] is True
    assert [point["users"] for point in embedded["points"]] == [200, 400]
    for point in embedded["points"]:
        assert set(point["rows"]) == {"RegisterUser", "ListUsers"}
        assert all(row["errors"] == {} and row["rpcs"] > 0 for row in point["rows"].values())
    assert document["machine"]["cpu_model"] and document["machine"]["cores"] >= 1

    goals = {goal["name"]: goal for goal in document["goals"]}
    assert set(goals) == set(GOALS)
    assert all(goal["verdict"] in {"met", "not met"} for goal in goals.values()), goals

    capacity = document["capacity"]
    scenarios = {scenario["name"]: scenario for scenario in capacity["scenarios"]}
    assert scenarios["GetUser, 1 session"]["requests"] == {"GetItem": 1}
    assert scenarios["GetUser, 1 session"]["read_units"] >= 0.5
    assert all(s["read_units"] + s["write_units"] > 0 for s in scenarios.values()), scenarios
    assert set(ISSUE_15_SCENARIOS) <= set(scenarios), sorted(scenarios)
    # What ResendVerification does after its reply (the lookup and the write) is in its window.
    assert scenarios["ResendVerification"]["requests"].get("TransactWriteItems") == 1
    assert scenarios["VerifyEmail, wrong code"]["write_units"] > 0  # the wrong code is counted
    assert all(scenarios[name]["write_units"] == 0 for name in ISSUE_15_SCENARIOS[7:9])
    # Sign-in with a second factor (issue 16): the password alone reads no sessions and writes
    # the user alone (the challenge); the code opens the session in one transaction.
    assert scenarios["Authenticate, TOTP on, challenge"]["requests"] == {"GetItem": 2, "PutItem": 1}
    assert scenarios["CompleteSignIn, TOTP code"]["requests"] == {
        "GetItem": 1,
        "Query": 1,
        "TransactWriteItems": 1,
    }
    assert scenarios["CompleteSignIn, wrong code"]["requests"] == {"GetItem": 1, "PutItem": 1}
    assert capacity["typical_user_bytes"] > 0
    checked = {check["operation"] for check in capacity["cross_checks"]}
    assert checked >= {"GetItem", "Scan", "TransactWriteItems"}, checked

    markdown = (tmp_path / "results.md").read_text()
    assert "## Capacity units per RPC" in markdown
    # The scale model of this run's units, as `make capacity` prints it.
    scale = markdown.split("## Scale model", 1)[1]
    assert "| Users | " in scale and "| UserSessions | " in scale and "| **all** | " in scale
    assert "## CPU per RPC on the keep-alive stand-in" in markdown
    assert "## Event loop under password hashing\n\nOn the keep-alive stand-in," in markdown
    assert all(f"| {name} | " in markdown for name in LOOP_PROBES)
    for name in STANDIN_ROW_NAMES:
        assert all(f"| {name} | {c} |" in markdown for c in CONCURRENCIES), name
    assert markdown in stdout
    for name in ("GetUser", "GetUserByEmail", "ListUsers", "RegisterUser", "Authenticate"):
        assert all(f"| {name} | {c} |" in markdown for c in CONCURRENCIES), name
    for goal in goals.values():
        assert f"| {goal['name']} | {goal['target']} | **{goal['verdict']}** |" in markdown
        assert f"{goal['verdict'].upper()}  {goal['name']}:" in stdout
    assert (tmp_path / ".gitignore").read_text().strip().endswith("*")


def _check_loop_rows(loop: dict[str, Any], *, hash_workers: int) -> None:
    """The event-loop rows: each probe alone and under sign-ins, on the stand-in."""
    assert loop["backend"] == "stand-in" and loop["hash_workers"] == hash_workers
    assert loop["sign_ins_during_probes"] > 0 and loop["sign_in_errors"] == {}
    assert loop["sign_ins_completed"] >= loop["sign_ins_during_probes"]
    for phase in ("alone", "under_sign_ins"):
        assert tuple(loop[phase]) == LOOP_PROBES, loop[phase]
        for name, row in loop[phase].items():
            assert row["rpcs"] > 0 and row["errors"] == {}, (phase, name, row)
            # CPU is read in clock ticks (10 ms): a quick row of GetJwks may read none.
            figures = ("p50_ms", "p99_ms", "server_cpu_ms_per_rpc", "backend_cpu_ms_per_rpc")
            assert all(_is_number(row[figure]) for figure in figures), (phase, name, row)
    assert _is_number(loop["client_cpu_seconds_alone"] + loop["client_cpu_seconds_under"])
    # The service's CPU by thread: the sign-ins hash on threads other than the event loop's.
    assert loop["service_probe_rpcs_alone"] > 0 and loop["service_probe_rpcs_under"] > 0
    assert _is_number(loop["loop_ms_per_sign_in"])
    assert loop["service_other_cpu_seconds_under"] > 0 and loop["other_threads_ms_per_sign_in"] > 0


@pytest.mark.slow
async def test_a_quick_loop_only_run_measures_the_event_loop_on_the_stand_in(
    tmp_path: Path,
) -> None:
    workers = service_hash_workers(QUICK) + 1  # not the default: the setting given is recorded
    code, stdout, stderr = await run_bench(
        "--loop-only",
        "--quick",
        f"--service-setting=PASSWORD_HASH_WORKERS={workers}",
        f"--out={tmp_path}",
        "--seed=20",
    )

    assert code == 0, stderr[-4000:]
    document = json.loads((tmp_path / "results.json").read_text())
    _check_loop_rows(document["loop_protection"], hash_workers=workers)
    assert document["rows"] == [] and document["standin_rows"] == []
    assert document["capacity"] is None and document["startup"] is None
    goals = {goal["name"]: goal["verdict"] for goal in document["goals"]}
    assert {goals["Event loop"], goals["Event loop, no DynamoDB"]} <= {"met", "not met"}
    assert {v for name, v in goals.items() if not name.startswith("Event loop")} == {"not measured"}
    assert "## Event loop under password hashing" in stdout


PROFILED_RPCS = ("GetUser", "RefreshSession")
SERVERS = ("service", "limit")
HANDLER_LAYER = "handler & mapping (servicer, items, domain values, protobuf)"
# py-spy comes with the test dependencies: its run is never skipped.
PROFILERS = ("cprofile", "py-spy")


@pytest.mark.slow
@pytest.mark.parametrize("profiler", PROFILERS)
async def test_a_quick_profile_groups_the_service_cpu_by_layer(
    tmp_path: Path, profiler: str
) -> None:
    code, stdout, stderr = await run_bench(
        "--profile", "--quick", f"--profiler={profiler}", f"--out={tmp_path}", "--seed=20"
    )

    assert code == 0, stderr[-4000:]
    document = json.loads((tmp_path / "profile.json").read_text())
    profiles = {(p["server"], p["rpc"]): p for p in document["profiles"]}
    # The service and its limit, each RPC kind profiled on both.
    assert set(profiles) == {(server, rpc) for server in SERVERS for rpc in PROFILED_RPCS}
    for key, profile in profiles.items():
        assert profile["concurrency"] == 1 and profile["errors"] == {}, (key, profile)
        assert profile["rpcs"] > 0 and profile["cpu_ms_per_rpc"] > 0, (key, profile)
        assert profile["profiler"].lower().startswith(profiler.replace("cprofile", "cprofile,"))
        assert profile["samples"] > 0
        layers = {layer["name"]: layer for layer in profile["layers"]}
        assert list(layers) == list(LAYER_NAMES)
        # Every sample (or second) is some layer's.
        assert sum(layer["self_percent"] for layer in layers.values()) == pytest.approx(100, abs=1)
        assert profile["top_self"] and profile["top_inclusive"]
    markdown = (tmp_path / "profile.md").read_text()
    assert markdown in stdout
    for name in PROFILED_RPCS:
        assert f"## {name}, concurrency 1" in markdown
    assert all(f"| {layer} | " in markdown for layer in LAYER_NAMES)
    assert "| **all** | 100 | " in markdown
    if profiler != "cprofile":
        # A sampling profiler's quick run holds few samples, fewer still on a busy machine: which
        # layers they land in is chance. cProfile sees every call, so it checks the attribution.
        return
    for key, profile in profiles.items():
        assert layers_of(profile)[HANDLER_LAYER]["inclusive_percent"] > 0, key
    for rpc in PROFILED_RPCS:  # the service's calls go through aiobotocore, the limit's do not
        service = layers_of(profiles["service", rpc])
        assert any(
            share["self_percent"] > 0
            for name, share in service.items()
            if "aiobotocore:" in name and "HTTP" not in name
        )
        assert service["access log, request id & metrics"]["inclusive_percent"] > 0
    assert (
        layers_of(profiles["service", "RefreshSession"])["PyJWT & crypto"]["inclusive_percent"] > 0
    )


def layers_of(profile: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in profile["layers"]}


def test_the_bench_refuses_to_change_the_settings_it_controls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--quick", "--service-setting", "DYNAMODB_ENDPOINT=http://127.0.0.1:1"])

    assert exit_info.value.code == 2
    refusal = "USER_SERVICE_DYNAMODB_ENDPOINT is set by the benchmark itself"
    assert refusal in capsys.readouterr().err
