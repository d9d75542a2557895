"""Protection of the event loop: GetUser's p99 alone, then while sign-ins hash passwords.

Two more probes tell the causes of a slower GetUser apart. GetJwks touches no DynamoDB: it is
slowed only by the service's own event loop (or a starved CPU). The floor's GetUser runs in
another process with no password hashing: it is slowed only by the shared moto (which serves
one request at a time, behind the sign-ins' transactions) or a starved CPU.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import grpc

from tools.bench.calls import Calls
from tools.bench.measure import Call, Contender, Row, measure_side_by_side
from tools.bench.plan import LOOP_LOAD_WORKERS, Plan
from tools.bench.results import LoopProtection
from tools.bench.rows import warm_up
from tools.bench.stack import Stack

GOAL_PROBE = "GetUser"
# Sign-ins run this long before the probes are measured beside them, so every probe overlaps.
RAMP_SECONDS = 0.5


async def measure_loop_protection(
    calls: Calls, sign_in_calls: Calls, stack: Stack, plan: Plan
) -> LoopProtection:
    """``sign_in_calls`` sends over a channel of its own, as another client would."""
    probes: dict[str, Call] = {
        GOAL_PROBE: calls.get_user,
        "GetJwks (no DynamoDB)": calls.get_jwks,
        "floor (no hashing)": calls.floor_get_user,
    }
    for call in probes.values():
        await warm_up(call, plan)
    alone = await _probes(probes, stack, plan, "alone")
    stop = asyncio.Event()
    completed: list[int] = [0]
    errors: Counter[str] = Counter()

    async def sign_in_loop(worker: int) -> None:
        iteration = 0
        while not stop.is_set():
            try:
                await sign_in_calls.loop_load(worker, iteration)
            except grpc.aio.AioRpcError as error:
                errors[error.code().name] += 1
            else:
                completed[0] += 1
            iteration += 1

    loops = [asyncio.create_task(sign_in_loop(w)) for w in range(LOOP_LOAD_WORKERS)]
    try:
        await asyncio.sleep(RAMP_SECONDS)
        label = f"with {LOOP_LOAD_WORKERS} Authenticate in flight"
        under = await _probes(probes, stack, plan, label)
    finally:
        stop.set()
        # Each sign-in in flight ends within its deadline.
        await asyncio.gather(*loops, return_exceptions=True)
    return LoopProtection(alone, under, LOOP_LOAD_WORKERS, completed[0], dict(errors))


async def _probes(probes: dict[str, Call], stack: Stack, plan: Plan, label: str) -> dict[str, Row]:
    contenders = [
        Contender(
            name, call, stack.floor if name.startswith("floor") else stack.service, plan.loop_rpcs
        )
        for name, call in probes.items()
    ]
    rows = await measure_side_by_side(
        contenders, concurrency=1, rounds=plan.rounds, within=plan.row_seconds, backend=stack.moto
    )
    for row in rows:
        figures = f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms"
        print(f"  {row.name} {label}: {figures}", file=sys.stderr)
    return {row.name: row for row in rows}
