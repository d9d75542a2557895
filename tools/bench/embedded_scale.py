"""The embedded DynamoDB at two sizes: RegisterUser and one ListUsers page with 1,000 users stored,
then with 100,000 (the goal: within 1.5 x), on moto as the embedded server serves it.

moto runs as ``python -m server.embedded_dynamodb``: the code path ``make run`` starts in-process
and the tests start as a process, with ``server/embedded_moto_speedups.py`` applied (or, with
``speedups=False``, moto as released, to compare). It runs as a process of its own so that its
CPU is counted apart from the service's and the seeding client does not share the service's
interpreter. One service on fresh tables; users seeded by BatchWriteItem straight into moto.

Alone: ``python -m tools.bench.embedded_scale [--quick] [--without-speedups]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import grpc
from biome.user.v1.user_service_pb2_grpc import UserServiceStub

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from server.from_settings import LOCAL_CREDENTIALS
from tools.bench.calls import Calls
from tools.bench.environment import Tables, default_environment, on_moto
from tools.bench.goals import Goal
from tools.bench.measure import Contender, measure_side_by_side
from tools.bench.plan import FULL, QUICK, Plan
from tools.bench.processes import (
    HOST,
    ROOT,
    START_TIMEOUT_SECONDS,
    free_port,
    start_child,
    stop_child,
    wait_until_answering,
    wait_until_serving,
)
from tools.bench.results import EmbeddedScale, ScalePoint
from tools.bench.rows import warm_up
from tools.bench.seed import Seeded, seed_users, seeded_password_hash

RATIO_LIMIT = 1.5
ROWS = ("RegisterUser", "ListUsers")
RPCS_PER_POINT = {True: 30, False: 6}  # per row and size: full run, --quick


async def measure_embedded_scale(
    plan: Plan,
    logs: Path,
    password_hash: str,
    *,
    speedups: bool = True,
    random_seed: int | None = None,
) -> EmbeddedScale:
    """moto (the embedded server's) and one service; both rows at base_users, then scale_users."""
    result = EmbeddedScale(speedups)
    rpcs = RPCS_PER_POINT[not plan.quick]
    async with contextlib.AsyncExitStack() as exits:
        moto_port = free_port()
        endpoint = f"http://{HOST}:{moto_port}"
        args = ["-m", "server.embedded_dynamodb", "--host", HOST, "--port", str(moto_port)]
        if not speedups:
            args.append("--without-speedups")
        moto = await start_child("embedded-moto", args, default_environment(moto_port), logs)
        exits.push_async_callback(stop_child, moto)
        await wait_until_answering(endpoint, moto, START_TIMEOUT_SECONDS)
        suffix = uuid4().hex[:8]
        tables = Tables(
            f"Users-e-{suffix}",
            f"UserEmails-e-{suffix}",
            f"UserEvents-e-{suffix}",
            f"UserSessions-e-{suffix}",
        )
        port = free_port()
        environment = on_moto(port, endpoint, tables, plan.service_settings)
        service = await start_child(
            "embedded-service", ["-m", "server", "serve"], environment, logs
        )
        exits.push_async_callback(stop_child, service)
        await wait_until_serving(f"{HOST}:{port}", service, START_TIMEOUT_SECONDS)
        options = DynamoDbOptions(
            region="us-east-1",
            endpoint_url=endpoint,
            access_key_id=LOCAL_CREDENTIALS[0],
            secret_access_key=LOCAL_CREDENTIALS[1],
        )
        dynamodb = await exits.enter_async_context(open_dynamodb_client(options))
        channel = await exits.enter_async_context(grpc.aio.insecure_channel(f"{HOST}:{port}"))
        stub = UserServiceStub(channel)
        seeded = Seeded()
        calls = Calls(stub, stub, seeded, rpc_timeout=plan.rpc_timeout, seed=random_seed)
        for users in (plan.base_users, plan.scale_users):
            started = time.monotonic()
            await seed_users(
                dynamodb,
                tables,
                seeded,
                count=users - len(seeded) - calls.registered,
                password_hash=password_hash,
                in_flight=plan.seed_in_flight,
                within=plan.seed_seconds,
            )
            result.seeding_seconds.append(time.monotonic() - started)
            point = ScalePoint(len(seeded) + calls.registered, {})
            every = {"RegisterUser": calls.register_user, "ListUsers": calls.list_users}
            for call in every.values():
                await warm_up(call, plan)
            measured = await measure_side_by_side(
                [Contender(name, call, service, rpcs) for name, call in every.items()],
                concurrency=1,
                rounds=plan.rounds,
                within=plan.row_seconds,
                backend=moto,
            )
            for row in measured:
                point.rows[row.name] = row
                print(
                    f"  embedded, {point.users:,} users: {row.name} p50 {row.p50_ms:.2f} ms, "
                    f"moto CPU {row.backend_cpu_ms_per_rpc:.2f} ms/RPC",
                    file=sys.stderr,
                )
            result.points.append(point)
    return result


def embedded_scale_goals(scale: EmbeddedScale | None) -> list[Goal]:
    """Per row: p50 with the large table within RATIO_LIMIT x p50 with the small one."""
    goals = []
    for name in ROWS:
        target = f"p50 with the large table <= {RATIO_LIMIT} x p50 with the small one"
        title = f"{name} at scale, embedded DynamoDB"
        if scale is None or len(scale.points) < 2:
            goals.append(Goal(title, target, None, "not measured"))
            continue
        small, large = scale.points[0], scale.points[-1]
        before, after = small.rows[name], large.rows[name]
        ratio = after.p50_ms / before.p50_ms if before.p50_ms > 0 else math.nan
        moto_ratio = after.backend_cpu_ms_per_rpc / max(before.backend_cpu_ms_per_rpc, 1e-9)
        figures = (
            f"p50 {before.p50_ms:.2f} ms at {small.users:,} users, {after.p50_ms:.2f} ms at "
            f"{large.users:,} = {ratio:.2f}x; moto CPU/RPC {moto_ratio:.2f}x"
            + ("" if scale.speedups else " (moto as released, without the speed-ups)")
        )
        goals.append(Goal(title, target, ratio <= RATIO_LIMIT, figures))
    return goals


def embedded_scale_section(scale: EmbeddedScale | None) -> list[str]:
    """The markdown section of results.md."""
    if scale is None or not scale.points:
        return []
    patched = "with" if scale.speedups else "without"
    seeding = ", ".join(
        f"{point.users:,} users after {seconds:.1f} s"
        for point, seconds in zip(scale.points, scale.seeding_seconds, strict=False)
    )
    lines = [
        "",
        "## Embedded DynamoDB at two sizes",
        "",
        f"moto as the embedded server serves it ({patched} `server/embedded_moto_speedups.py`), "
        "one service, concurrency 1, the two rows in turns at each size. ListUsers: one page of "
        f"50 after a random stored user. Seeding (BatchWriteItem straight into moto): {seeding}.",
        "",
        "| Users | RPC | RPCs | Errors | p50 ms | p99 ms | server CPU ms/RPC | moto CPU ms/RPC |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for point in scale.points:
        for name, row in point.rows.items():
            lines.append(
                f"| {point.users:,} | {name} | {row.rpcs} | {sum(row.errors.values())} "
                f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {row.server_cpu_ms_per_rpc:.2f} "
                f"| {row.backend_cpu_ms_per_rpc:.2f} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.embedded_scale",
        description="Only the benchmark's embedded-DynamoDB scale rows; prints them and verdicts.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness")
    parser.add_argument(
        "--without-speedups", action="store_true", help="moto as released, to compare"
    )
    parser.add_argument("--scale-users", type=int, help="users at the large size")
    parser.add_argument("--rpc-timeout", type=float, help="deadline of every RPC, seconds")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.scale_users is not None:
        plan = replace(plan, scale_users=args.scale_users)
    if args.rpc_timeout is not None:
        plan = replace(plan, rpc_timeout=args.rpc_timeout)

    async def run() -> EmbeddedScale:
        password_hash = await seeded_password_hash(dict(plan.service_settings))
        logs = ROOT / "bench-results" / "logs"
        return await measure_embedded_scale(
            plan, logs, password_hash, speedups=not args.without_speedups
        )

    scale = asyncio.run(run())
    print("\n".join(embedded_scale_section(scale)))
    for goal in embedded_scale_goals(scale):
        print(f"  {goal.verdict.upper():>12}  {goal.name}: {goal.figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
