"""``python -m tools.load``: load a local user-service with a bounded mix, verify, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from biome.user.v1 import user_service_pb2_grpc

from tools.load.accounts import Accounts
from tools.load.instance import (
    InstanceNotReady,
    SpawnedInstance,
    local_endpoint,
    spawned_instance,
    wait_until_serving,
)
from tools.load.mix import METHODS, parse_mix
from tools.load.progress import Progress
from tools.load.report import Summary, render
from tools.load.stats import Stats
from tools.load.target import TargetRefused, loopback_target
from tools.load.verify import verify_accounts
from tools.load.workload import Plan, Workload

PROG = "python -m tools.load"
DEFAULT_TARGET = "127.0.0.1:50051"
MAX_COUNT = 100_000
MAX_CONCURRENCY = 128
MAX_DURATION_SECONDS = 600.0
MAX_RPC_TIMEOUT_SECONDS = 60.0
READY_TIMEOUT_SECONDS = 5.0
EXIT_PASSED, EXIT_FAILED = 0, 1  # argparse exits 2 on a usage error or a refused target


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.spawn and args.target is not None:
        parser.error("give --target or --spawn, not both")
    try:
        if args.spawn:
            target = None
            local_endpoint(os.environ)
        else:
            target = loopback_target(args.target or DEFAULT_TARGET)
        plan = Plan(
            count=args.count,
            concurrency=args.concurrency,
            duration=args.duration,
            rpc_timeout=args.rpc_timeout,
            mix=parse_mix(args.mix),
            race_fraction=args.race_fraction,
            duplicate_fraction=args.duplicate_fraction,
            seed=args.seed,
        )
    except (TargetRefused, ValueError) as error:
        parser.error(str(error))
    try:
        summary = asyncio.run(_run_until_stopped(plan, target))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except InstanceNotReady as error:
        hint = "" if target is None else " (start one with `make run`, or pass --spawn)"
        print(f"{PROG}: {error}{hint}", file=sys.stderr)
        return EXIT_FAILED
    print(render(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary.as_json(), indent=2) + "\n")
    return EXIT_PASSED if summary.passed else EXIT_FAILED


async def _run_until_stopped(plan: Plan, target: str | None) -> Summary:
    """Runs the load; SIGTERM cancels it as Ctrl-C does, so a spawned instance is still stopped."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await _run(plan, target)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _run(plan: Plan, target: str | None) -> Summary:
    async with _instance(target) as (address, spawned):
        stats, accounts = Stats(), Accounts()
        async with grpc.aio.insecure_channel(address) as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            workload = Workload(stub, plan, stats, accounts)
            started = time.monotonic()
            progress = Progress(sys.stderr, lambda elapsed: _status(stats, plan, elapsed))
            progress.start()
            try:
                stopped_by = await workload.run()
            finally:
                await progress.stop()
            seconds = time.monotonic() - started
            print(f"verifying {len(accounts.all)} registered users ...", file=sys.stderr)
            verification = await verify_accounts(
                stub,
                accounts.all,
                concurrency=plan.concurrency,
                rpc_timeout=plan.rpc_timeout,
                within=plan.duration + plan.rpc_timeout,
                seed=plan.seed,
            )
    summary = Summary(
        target=address,
        spawned=spawned is not None,
        seconds=seconds,
        stopped_by=stopped_by,
        stats=stats,
        registered=len(accounts.all),
        verification=verification,
        server_exit_code=spawned.exit_code if spawned is not None else None,
    )
    if spawned is not None:
        if summary.passed:
            spawned.discard_log()
        else:
            print(f"the spawned instance's log is in {spawned.log_path}", file=sys.stderr)
    return summary


@contextlib.asynccontextmanager
async def _instance(target: str | None) -> AsyncIterator[tuple[str, SpawnedInstance | None]]:
    """The address to load: ``target`` once it is SERVING, or a spawned instance's."""
    if target is not None:
        await wait_until_serving(target, READY_TIMEOUT_SECONDS)
        yield target, None
        return
    print("starting user-service serve on a free loopback port ...", file=sys.stderr)
    async with spawned_instance() as spawned:
        yield spawned.target, spawned


def _status(stats: Stats, plan: Plan, elapsed: float) -> str:
    done = stats.total
    return (
        f"load: {done}/{plan.count} RPCs, {done / max(elapsed, 1e-9):.0f}/s, "
        f"{elapsed:.0f}/{plan.duration:.0f} s, unexpected {stats.unexpected_count}"
    )


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Load a user-service on this machine with a mix of RPCs, then check that every user "
            "it registered can be read by id and by email. Exits 0 only when no RPC got an "
            "unexpected status and no user was lost."
        ),
    )
    where = parser.add_argument_group("where")
    where.add_argument(
        "--target",
        help=f"HOST:PORT of a running instance, loopback only (default {DEFAULT_TARGET})",
    )
    where.add_argument(
        "--spawn",
        action="store_true",
        help="start a user-service of its own on a free loopback port (embedded DynamoDB "
        "unless the environment names a local endpoint) and stop it at the end",
    )
    how = parser.add_argument_group("how much")
    how.add_argument(
        "--count",
        type=_bounded(int, 1, MAX_COUNT),
        default=3000,
        help=f"RPCs to send (default 3000, at most {MAX_COUNT})",
    )
    how.add_argument(
        "--concurrency",
        type=_bounded(int, 1, MAX_CONCURRENCY),
        default=16,
        help=f"RPCs in flight at once (default 16, at most {MAX_CONCURRENCY})",
    )
    how.add_argument(
        "--duration",
        type=_bounded(float, 1, MAX_DURATION_SECONDS),
        default=120.0,
        help="stop sending after this many seconds "
        f"(default 120, at most {MAX_DURATION_SECONDS:g})",
    )
    how.add_argument(
        "--rpc-timeout",
        type=_bounded(float, 0.1, MAX_RPC_TIMEOUT_SECONDS),
        default=10.0,
        help="deadline of each RPC in seconds (default 10)",
    )
    what = parser.add_argument_group("what")
    what.add_argument(
        "--mix",
        default="",
        help="weights replacing the defaults, e.g. 'ListUsers=0,GetUser=40'; RPCs: "
        + ", ".join(METHODS),
    )
    what.add_argument(
        "--race-fraction",
        type=_bounded(float, 0, 1),
        default=0.2,
        help="share of UpdateProfile and RefreshSession sent as a race of two contenders "
        "(exactly one must win, the other get ABORTED; default 0.2)",
    )
    what.add_argument(
        "--duplicate-fraction",
        type=_bounded(float, 0, 1),
        default=0.05,
        help="share of RegisterUser that re-registers a known address in upper case "
        "(must get ALREADY_EXISTS; default 0.05)",
    )
    what.add_argument("--seed", type=int, help="random seed, to repeat a run's choices")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    return parser


if __name__ == "__main__":
    sys.exit(main())
