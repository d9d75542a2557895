"""The CPU rows on the keep-alive stand-in: floor, limit and service, each RPC kind side by side.

Every service row gets two ratios of server CPU per RPC at its concurrency: to its limit (the
bare handler plus the minimal signed requests, ``tools.bench.limit``) and to its floor (the same
handler doing aiobotocore calls: one GetItem, or guard + user for GetUserByEmail; RefreshSession,
which reads the user and its session and writes the session, is compared with the one-GetItem
floor).
"""

from __future__ import annotations

import sys

from tools.bench.calls import Calls
from tools.bench.measure import Call, Contender, Row, measure_side_by_side
from tools.bench.plan import CONCURRENCIES, Plan
from tools.bench.rows import warm_up
from tools.bench.standin_stack import StandInStack

PREFIX = "stand-in: "
KINDS = ("GetUser", "GetUserByEmail", "RefreshSession")
FLOOR_OF = {"GetUser": "floor", "GetUserByEmail": "floor (guard + user)", "RefreshSession": "floor"}


def floor_row(kind: str) -> str:
    return f"{PREFIX}{FLOOR_OF[kind]}"


def limit_row(kind: str) -> str:
    return f"{PREFIX}limit {kind}"


def service_row(kind: str) -> str:
    return f"{PREFIX}{kind}"


ROW_NAMES = (
    floor_row("GetUser"),
    floor_row("GetUserByEmail"),
    *(limit_row(kind) for kind in KINDS),
    *(service_row(kind) for kind in KINDS),
)


async def measure_standin_rows(
    service: Calls, limit: Calls, stack: StandInStack, plan: Plan
) -> list[Row]:
    """Every row at each concurrency, in turns; the stand-in's CPU is the backend column."""
    calls: dict[str, Call] = {
        floor_row("GetUser"): service.floor_get_user,
        floor_row("GetUserByEmail"): service.floor_get_user_by_email,
        limit_row("GetUser"): limit.get_user,
        limit_row("GetUserByEmail"): limit.get_user_by_email,
        limit_row("RefreshSession"): limit.refresh_session,
        service_row("GetUser"): service.get_user,
        service_row("GetUserByEmail"): service.get_user_by_email,
        service_row("RefreshSession"): service.refresh_session,
    }
    servers = {
        **{name: stack.floor for name in calls if name.startswith(f"{PREFIX}floor")},
        **{name: stack.limit for name in calls if name.startswith(f"{PREFIX}limit")},
    }
    rows: list[Row] = []
    for index, concurrency in enumerate(CONCURRENCIES):
        await service.open_refresh_chains(concurrency)
        await limit.open_refresh_chains(concurrency)
        for call in calls.values():
            await warm_up(call, plan)
        contenders = [
            Contender(name, call, servers.get(name, stack.service), plan.read_rpcs[index])
            for name, call in calls.items()
        ]
        measured = await measure_side_by_side(
            contenders,
            concurrency=concurrency,
            rounds=plan.rounds,
            within=plan.row_seconds,
            backend=stack.standin,
        )
        by_name = {row.name: row for row in measured}
        for kind in KINDS:
            row, floor = by_name[service_row(kind)], by_name[floor_row(kind)]
            limit_cpu = by_name[limit_row(kind)].server_cpu_ms_per_rpc
            row.ratio_to_floor = row.server_cpu_ms_per_rpc / max(floor.server_cpu_ms_per_rpc, 1e-9)
            row.ratio_to_limit = row.server_cpu_ms_per_rpc / max(limit_cpu, 1e-9)
            if kind != "RefreshSession":  # that floor is GetUser's, compared with its limit
                floor.ratio_to_limit = floor.server_cpu_ms_per_rpc / max(limit_cpu, 1e-9)
            floor.ratio_to_floor = 1.0
            by_name[limit_row(kind)].ratio_to_limit = 1.0
        for row in measured:
            cpu = f"server CPU {row.server_cpu_ms_per_rpc:.3f} ms/RPC"
            ratios = f"x limit {row.ratio_to_limit:.2f}, x floor {row.ratio_to_floor:.2f}"
            errors = f", errors {row.errors}" if row.errors else ""
            print(f"  {row.name} c={concurrency}: {cpu}, {ratios}{errors}", file=sys.stderr)
        rows += measured
    return sorted(rows, key=lambda row: (ROW_NAMES.index(row.name), row.concurrency))
