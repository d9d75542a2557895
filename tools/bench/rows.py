"""The table's rows (floor and service RPCs at each concurrency) and the two scale points."""

from __future__ import annotations

import sys

from tools.bench.calls import Calls, row_calls
from tools.bench.measure import Call, ClosedLoop, Contender, Row, measure_side_by_side
from tools.bench.plan import CONCURRENCIES, Plan
from tools.bench.results import ScalePoint
from tools.bench.stack import Stack

FLOOR_ROWS = ("floor", "floor (guard + user)")
HASHING_ROWS = ("RegisterUser", "Authenticate")  # argon2 on every call: fewer RPCs per row
SCALE_ROWS = ("GetUser", "GetUserByEmail", "ListUsers")


async def measure_rows(calls: Calls, stack: Stack, plan: Plan) -> list[Row]:
    """Every row at each concurrency, in turns; "x floor" compares CPU per RPC with the floor's."""
    rows: list[Row] = []
    every = row_calls(calls)
    for index, concurrency in enumerate(CONCURRENCIES):
        await calls.open_refresh_chains(concurrency)
        for call in every.values():
            await warm_up(call, plan)
        contenders = [
            Contender(
                name,
                call,
                stack.floor if name in FLOOR_ROWS else stack.service,
                _counts(name, plan)[index],
            )
            for name, call in every.items()
        ]
        measured = await measure_side_by_side(
            contenders,
            concurrency=concurrency,
            rounds=plan.rounds,
            within=plan.row_seconds,
            backend=stack.moto,
        )
        floor = measured[0]
        for row in measured:
            row.ratio_to_floor = row.server_cpu_ms_per_rpc / max(floor.server_cpu_ms_per_rpc, 1e-9)
            print(f"  {_line(row)}", file=sys.stderr)
        rows += measured
    # The table lists each row at every concurrency together.
    return sorted(rows, key=lambda row: (list(every).index(row.name), row.concurrency))


def _counts(name: str, plan: Plan) -> tuple[int, int]:
    if name in HASHING_ROWS:
        return plan.hash_rpcs
    return {"ListUsers": plan.page_rpcs, "RefreshSession": plan.write_rpcs}.get(
        name, plan.read_rpcs
    )


async def measure_scale(
    small: Calls, large: Calls, stack: Stack, plan: Plan, users: tuple[int, int]
) -> list[ScalePoint]:
    """The read paths at concurrency 1 against the small table's service and the large one's,
    in turns (so that the machine's drift falls on both alike)."""
    points = ScalePoint(users[0], {}), ScalePoint(users[1], {})
    calls = row_calls(small), row_calls(large)
    services = stack.service, stack.large_service
    for name in SCALE_ROWS:
        count = plan.scale_page_rpcs if name == "ListUsers" else plan.scale_rpcs
        for side in (0, 1):
            await warm_up(calls[side][name], plan)
        contenders = [
            Contender(f"{name} {side}", calls[side][name], services[side], count) for side in (0, 1)
        ]
        measured = await measure_side_by_side(
            contenders,
            concurrency=1,
            rounds=plan.rounds,
            within=plan.row_seconds,
            backend=stack.moto,
        )
        for side, row in enumerate(measured):
            row.name = name
            points[side].rows[name] = row
            print(f"  {points[side].users:,} users: {_line(row)}", file=sys.stderr)
    return list(points)


async def warm_up(call: Call, plan: Plan) -> None:
    """A few calls first (not measured): connections open, caches filled."""
    await ClosedLoop(call, concurrency=1, count=plan.warmup_rpcs, within=plan.row_seconds).run()


def _line(row: Row) -> str:
    errors = f", errors {row.errors}" if row.errors else ""
    return (
        f"{row.name} c={row.concurrency}: {row.rpcs} RPCs, {row.throughput:.0f}/s, "
        f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, "
        f"server CPU {row.server_cpu_ms_per_rpc:.3f} ms/RPC{errors}"
    )
