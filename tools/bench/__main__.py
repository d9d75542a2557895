"""``python -m tools.bench``: the service beside the floor, measured in one run on this machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import grpc
from biome.user.v1.user_service_pb2_grpc import UserServiceStub

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from server.from_settings import LOCAL_CREDENTIALS
from tools.bench.calls import RESERVED_USERS, Calls
from tools.bench.capacity.phase import measure_capacity
from tools.bench.embedded_scale import embedded_scale_goals, measure_embedded_scale
from tools.bench.environment import Tables, parse_service_setting
from tools.bench.goals import evaluate
from tools.bench.loop_protection import measure_loop_protection
from tools.bench.machine import describe_machine, load_average
from tools.bench.measure import Row
from tools.bench.memory import measure_long_run
from tools.bench.plan import FULL, QUICK, Plan
from tools.bench.processes import ROOT
from tools.bench.profiling import (
    PROFILERS,
    Profile,
    choose_profiler,
    measure_profiles,
    profile_markdown,
    write_profiles,
)
from tools.bench.report import markdown, write
from tools.bench.results import Results
from tools.bench.rows import measure_rows, measure_scale
from tools.bench.seed import Seeded, seed_users, seeded_password_hash
from tools.bench.stack import running_stack
from tools.bench.standin_rows import measure_standin_rows
from tools.bench.standin_stack import running_standin_stack
from tools.bench.startup import measure_startup
from tools.load.instance import InstanceNotReady

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PROG = "python -m tools.bench"
DEFAULT_OUT = ROOT / "bench-results"
EXIT_DONE, EXIT_FAILED = 0, 1  # argparse exits 2 on a usage error
_T = TypeVar("_T")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    plan = _plan(args)
    if plan.base_users < RESERVED_USERS:
        parser.error(f"--base-users must be at least {RESERVED_USERS}")
    if args.profile:
        return _profile(plan, args)
    started = time.monotonic()
    try:
        results = asyncio.run(_run_until_stopped(plan, args.out, args.seed, started))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except (InstanceNotReady, TimeoutError, RuntimeError, OSError) as error:
        print(f"{PROG}: {type(error).__name__}: {error}", file=sys.stderr)
        print(f"{PROG}: the processes' logs are in {args.out / 'logs'}", file=sys.stderr)
        return EXIT_FAILED
    goals = evaluate(results) + embedded_scale_goals(results.embedded_scale)
    paths = write(results, goals, args.out)
    print(markdown(results, goals))
    print("Goals:")
    for goal in goals:
        print(f"  {goal.verdict.upper():>12}  {goal.name}: {goal.figures}")
    print(f"Total run time: {results.total_seconds:.0f} s. Written: {', '.join(map(str, paths))}")
    if results.rpc_errors:
        print(
            f"{PROG}: warning: {results.rpc_errors} RPCs failed (see the Errors column); "
            "their rows' figures are suspect",
            file=sys.stderr,
        )
    return EXIT_DONE


def _profile(plan: Plan, args: argparse.Namespace) -> int:
    """--profile: GetUser and RefreshSession by layer on the stand-in (tools.bench.profiling)."""
    machine = describe_machine()
    try:
        profiler = choose_profiler(args.profiler)
        profiles = asyncio.run(
            _until_stopped(_measure_profiles(plan, args.out / "logs", args.seed, profiler))
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except (InstanceNotReady, TimeoutError, RuntimeError, OSError) as error:
        print(f"{PROG}: {type(error).__name__}: {error}", file=sys.stderr)
        print(f"{PROG}: the processes' logs are in {args.out / 'logs'}", file=sys.stderr)
        return EXIT_FAILED
    paths = write_profiles(profiles, machine, args.out)
    print(profile_markdown(profiles, machine))
    print(f"Written: {', '.join(map(str, paths))}")
    return EXIT_DONE


async def _measure_profiles(
    plan: Plan, logs: Path, random_seed: int | None, profiler: str
) -> list[Profile]:
    password_hash = await seeded_password_hash(dict(plan.service_settings))
    return await measure_profiles(plan, logs, password_hash, random_seed, profiler=profiler)


async def _until_stopped(work: Awaitable[_T]) -> _T:
    """Awaits ``work``; SIGTERM cancels it as Ctrl-C does, so the child processes still stop."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run_until_stopped(
    plan: Plan, out: Path, random_seed: int | None, started: float
) -> Results:
    """Runs the benchmark; SIGTERM cancels it as Ctrl-C does, so the child processes still stop."""
    return await _until_stopped(_run(plan, out, random_seed, started))


async def _run(plan: Plan, out: Path, random_seed: int | None, started: float) -> Results:
    results = Results(describe_machine(), plan)
    logs = out / "logs"
    phase = _phases(results, started)
    password_hash = await seeded_password_hash(dict(plan.service_settings))
    if plan.cpu_rows_only:
        with phase("CPU rows on the keep-alive stand-in"):
            results.standin_rows = await _standin_rows(plan, logs, password_hash, random_seed)
        results.total_seconds = time.monotonic() - started
        results.load_average_at_end = load_average()
        return results
    if not plan.loop_only:
        with phase("start-up (embedded default)"):
            results.startup = await measure_startup(plan.startup_runs, logs, plan.service_settings)
    async with contextlib.AsyncExitStack() as exits:
        with phase("starting moto, the services and the floor"):
            stack = await exits.enter_async_context(running_stack(logs, plan.service_settings))
            options = DynamoDbOptions(
                region="us-east-1",
                endpoint_url=stack.endpoint,
                access_key_id=LOCAL_CREDENTIALS[0],
                secret_access_key=LOCAL_CREDENTIALS[1],
            )
            dynamodb = await exits.enter_async_context(open_dynamodb_client(options))
            targets = (stack.service_target, stack.floor_target, stack.service_target)
            channels = [
                await exits.enter_async_context(grpc.aio.insecure_channel(target))
                for target in (*targets, stack.large_target)
            ]
            service, floor, sign_ins, large = (UserServiceStub(channel) for channel in channels)
        seeded, seeded_large = Seeded(), Seeded()

        def calls_to(stub: UserServiceAsyncStub, users: Seeded) -> Calls:
            return Calls(stub, floor, users, rpc_timeout=plan.rpc_timeout, seed=random_seed)

        calls = calls_to(service, seeded)

        async def fill(tables: Tables, into: Seeded, count: int) -> None:
            with phase(f"seeding {count:,} users"):
                before = into.seconds
                await seed_users(
                    dynamodb,
                    tables,
                    into,
                    count=count,
                    password_hash=password_hash,
                    in_flight=plan.seed_in_flight,
                    within=plan.seed_seconds,
                )
            results.seeding.users.append(count)
            results.seeding.seconds.append(into.seconds - before)
            results.seeding.batch_requests += into.batch_requests
            results.seeding.unprocessed_retries += into.unprocessed_retries

        await fill(stack.tables, seeded, plan.base_users)
        if plan.loop_only:
            with phase("event loop under sign-ins"):
                other_client = calls_to(sign_ins, seeded)
                results.loop = await measure_loop_protection(calls, other_client, stack, plan)
            results.total_seconds = time.monotonic() - started
            results.load_average_at_end = load_average()
            return results
        with phase("rows"):
            results.rows = await measure_rows(calls, stack, plan)
        with phase("event loop under sign-ins"):
            other_client = calls_to(sign_ins, seeded)
            results.loop = await measure_loop_protection(calls, other_client, stack, plan)
        with phase(f"long run of {plan.long_run_rpcs:,} GetUser"):
            results.long_run = await measure_long_run(calls, stack, plan)
        with phase("capacity units per RPC"):
            results.capacity = await measure_capacity(
                stack.endpoint,
                stack.tables,
                logs,
                plan.service_settings,
                quick=plan.quick,
                rpc_timeout=plan.rpc_timeout,
            )
        # Filled last: a large table in moto's memory slows its garbage collection for all.
        await fill(stack.large_tables, seeded_large, plan.scale_users)
        with phase("scale points"):
            users = len(seeded) + calls.registered, len(seeded_large)
            large_calls = calls_to(large, seeded_large)
            results.scale = await measure_scale(calls, large_calls, stack, plan, users)
        with phase("stopping"):
            await exits.aclose()
    with phase("CPU rows on the keep-alive stand-in"):
        results.standin_rows = await _standin_rows(plan, logs, password_hash, random_seed)
    with phase("embedded DynamoDB at two sizes"):
        results.embedded_scale = await measure_embedded_scale(
            plan, logs, password_hash, speedups=plan.embedded_speedups, random_seed=random_seed
        )
    results.total_seconds = time.monotonic() - started
    results.load_average_at_end = load_average()
    return results


async def _standin_rows(
    plan: Plan, logs: Path, password_hash: str, random_seed: int | None
) -> list[Row]:
    async with contextlib.AsyncExitStack() as exits:
        stack = await exits.enter_async_context(
            running_standin_stack(logs, password_hash, plan.service_settings)
        )
        targets = (stack.service_target, stack.floor_target, stack.limit_target)
        channels = [
            await exits.enter_async_context(grpc.aio.insecure_channel(target)) for target in targets
        ]
        service, floor, limit = (UserServiceStub(channel) for channel in channels)

        def calls(stub: UserServiceAsyncStub) -> Calls:
            return Calls(
                stub,
                floor,
                stack.seeded,
                rpc_timeout=plan.rpc_timeout,
                seed=random_seed,
                sign_ins=service,
            )

        return await measure_standin_rows(calls(service), calls(limit), stack, plan)


Phase = Callable[[str], contextlib.AbstractContextManager[None]]


def _phases(results: Results, started: float) -> Phase:
    """``with phase(name):`` prints the phase's start and records how long it took."""

    @contextlib.contextmanager
    def phase(name: str) -> Iterator[None]:
        print(f"[{time.monotonic() - started:6.1f} s] {name} ...", file=sys.stderr)
        begun = time.monotonic()
        try:
            yield
        finally:
            results.phase_seconds[name] = time.monotonic() - begun

    return phase


def _plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        name: value
        for name, value in (
            ("base_users", args.base_users),
            ("scale_users", args.scale_users),
            ("long_run_rpcs", args.long_run_rpcs),
            ("startup_runs", args.startup_runs),
            ("rpc_timeout", args.rpc_timeout),
            ("seed_in_flight", args.seed_in_flight),
        )
        if value is not None
    }
    if args.service_setting:
        overrides["service_settings"] = tuple(args.service_setting)
    if args.embedded_without_speedups:
        overrides["embedded_speedups"] = False
    if args.cpu_rows_only:
        overrides["cpu_rows_only"] = True
    if args.loop_only:
        overrides["loop_only"] = True
    return replace(plan, **overrides)


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _service_setting(text: str) -> tuple[str, str]:
    try:
        return parse_service_setting(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Start moto, user-service and the floor (a minimal gRPC server doing one GetItem per "
            "DynamoDB operation) on loopback ports, and measure them side by side: throughput, "
            "p50/p99 and server CPU per RPC at concurrency 1 and 16, reads at two table sizes, "
            "GetUser under concurrent sign-ins, start-up time and memory. Writes results.json and "
            "results.md (and latency.png when matplotlib is importable), prints the table and "
            "each goal's verdict. A benchmark, not a test: it exits 0 when the run completed, "
            "whatever the verdicts (failed RPCs are counted in the table and warned about)."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny sizes ({QUICK.base_users} users, a few dozen RPCs per row): checks the "
        "harness, in well under a minute; its figures are not worth reading",
    )
    parser.add_argument(
        "--base-users",
        type=_bounded(int, RESERVED_USERS, 1_000_000),
        help=f"users stored while the rows run (default {FULL.base_users:,})",
    )
    parser.add_argument(
        "--scale-users",
        type=_bounded(int, RESERVED_USERS, 1_000_000),
        help=f"users stored at the large scale point (default {FULL.scale_users:,}); "
        "moto takes them at about 1,200 a second",
    )
    parser.add_argument(
        "--long-run-rpcs",
        type=_bounded(int, 100, 1_000_000),
        help=f"GetUser calls of the memory run (default {FULL.long_run_rpcs:,})",
    )
    parser.add_argument(
        "--startup-runs",
        type=_bounded(int, 1, 20),
        help=f"start-up measurements, the median is judged (default {FULL.startup_runs})",
    )
    parser.add_argument(
        "--rpc-timeout",
        type=_bounded(float, 0.5, 60),
        help=f"deadline of every RPC in seconds (default {FULL.rpc_timeout:g})",
    )
    parser.add_argument(
        "--seed-in-flight",
        type=_bounded(int, 1, 32),
        help=f"BatchWriteItem requests in flight while seeding (default {FULL.seed_in_flight})",
    )
    parser.add_argument(
        "--service-setting",
        action="append",
        type=_service_setting,
        metavar="NAME=VALUE",
        help="a USER_SERVICE_* setting for the service (and the floor's client), e.g. "
        "PASSWORD_HASH_WORKERS=1; repeatable. Without it the service runs on its defaults "
        "(development profile, log level WARNING), whatever this shell's environment says",
    )
    parser.add_argument(
        "--embedded-without-speedups",
        action="store_true",
        help="measure the embedded-DynamoDB scale rows on moto as released (without "
        "server/embedded_moto_speedups.py), to compare",
    )
    parser.add_argument(
        "--cpu-rows-only",
        action="store_true",
        help="measure only the CPU rows on the keep-alive stand-in (floor, limit, service; "
        "a few minutes); every other goal is then 'not measured'",
    )
    parser.add_argument(
        "--loop-only",
        action="store_true",
        help="measure only the event loop under sign-ins (moto, the service, the floor, the "
        "base users; about a minute); every other goal is then 'not measured'",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the service instead: GetUser and RefreshSession at concurrency 1 on the "
        "keep-alive stand-in, grouped by layer (gRPC, access log and metrics, mapping, "
        "aiobotocore's signing, parsing and HTTP, PyJWT and crypto, the unit of work); writes "
        "profile.json and profile.md. About two minutes; with --quick, seconds",
    )
    parser.add_argument(
        "--profiler",
        choices=PROFILERS,
        default="auto",
        help="with --profile: py-spy (sampling from outside the service; `.venv/bin/pip "
        "install py-spy`), cprofile (inside the service, inflates small functions), or auto "
        "(py-spy when installed, else cprofile; the default)",
    )
    parser.add_argument("--seed", type=int, help="random seed, to repeat a run's choices")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where results and the processes' logs go (default bench-results/)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
