"""Protection of the event loop: GetUser's p99 alone, then while sign-ins hash passwords.

Measured on the keep-alive stand-in (``tools.bench.standin``), as a latency row of the service:
moto spends milliseconds of CPU on every call, one call at a time, so behind the sign-ins' own
DynamoDB calls it would slow every probe whatever the service does.

Two more probes tell the causes of a slower GetUser apart. GetJwks touches no DynamoDB: it is
slowed only by the service's own event loop (or a starved CPU). The floor's GetUser runs in
another process with no password hashing: it is slowed only by the shared backend or a starved
CPU. The sign-ins are sent from this process, on a channel of their own; the CPU this process
spends in each phase is recorded, so its share of the cores can be told apart.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter

import grpc

from tools.bench.calls import Calls
from tools.bench.measure import Call, Contender, Row, measure_side_by_side
from tools.bench.plan import LOOP_LOAD_WORKERS, Plan
from tools.bench.processes import Child, thread_cpu_seconds
from tools.bench.results import LoopProtection
from tools.bench.rows import warm_up

GOAL_PROBE = "GetUser"
JWKS_PROBE = "GetJwks (no DynamoDB)"
FLOOR_PROBE = "floor (no hashing)"
# Sign-ins run this long before the probes are measured beside them, so every probe overlaps.
RAMP_SECONDS = 0.5


async def measure_loop_protection(
    calls: Calls,
    sign_in_calls: Calls,
    *,
    service: Child,
    floor: Child,
    backend: Child,
    plan: Plan,
    hash_workers: int,
) -> LoopProtection:
    """``sign_in_calls`` sends over a channel of its own, as another client would."""
    probes: dict[str, Call] = {
        GOAL_PROBE: calls.get_user,
        JWKS_PROBE: calls.get_jwks,
        FLOOR_PROBE: calls.floor_get_user,
    }
    servers = {GOAL_PROBE: service, JWKS_PROBE: service, FLOOR_PROBE: floor}
    for call in probes.values():
        await warm_up(call, plan)
    client_before, service_before = time.process_time(), thread_cpu_seconds(service.pid)
    alone = await _probes(probes, servers, backend, plan, "alone")
    client_alone = time.process_time() - client_before
    service_alone = thread_cpu_seconds(service.pid) - service_before
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
        client_before, sign_ins_before = time.process_time(), completed[0]
        service_before = thread_cpu_seconds(service.pid)
        under = await _probes(probes, servers, backend, plan, label)
        client_under = time.process_time() - client_before
        service_under = thread_cpu_seconds(service.pid) - service_before
        sign_ins_during = completed[0] - sign_ins_before
    finally:
        stop.set()
        # Each sign-in in flight ends within its deadline.
        await asyncio.gather(*loops, return_exceptions=True)
    seconds_under = sum(row.seconds for row in under.values())
    print(
        f"  {sign_ins_during} sign-ins during the probes ({sign_ins_during / seconds_under:.0f}/s, "
        f"{hash_workers} hashing threads); this process's CPU {client_alone:.2f} s alone, "
        f"{client_under:.2f} s under sign-ins",
        file=sys.stderr,
    )
    result = LoopProtection(
        alone,
        under,
        LOOP_LOAD_WORKERS,
        completed[0],
        dict(errors),
        backend="stand-in",
        hash_workers=hash_workers,
        sign_ins_during_probes=sign_ins_during,
        client_cpu_seconds_alone=client_alone,
        client_cpu_seconds_under=client_under,
        service_loop_cpu_seconds_alone=service_alone.main_thread,
        service_loop_cpu_seconds_under=service_under.main_thread,
        service_other_cpu_seconds_alone=service_alone.other_threads,
        service_other_cpu_seconds_under=service_under.other_threads,
        service_probe_rpcs_alone=_rpcs_of(alone, servers, service),
        service_probe_rpcs_under=_rpcs_of(under, servers, service),
    )
    print(
        f"  the service's CPU per sign-in: {result.loop_ms_per_sign_in:.1f} ms on its event "
        f"loop's thread (less the probes' own), {result.other_threads_ms_per_sign_in:.1f} ms "
        "on its other threads (password hashing)",
        file=sys.stderr,
    )
    return result


def _rpcs_of(rows: dict[str, Row], servers: dict[str, Child], server: Child) -> int:
    """The RPCs of ``rows`` that ``server`` answered."""
    return sum(row.rpcs for name, row in rows.items() if servers[name] is server)


async def _probes(
    probes: dict[str, Call], servers: dict[str, Child], backend: Child, plan: Plan, label: str
) -> dict[str, Row]:
    contenders = [
        Contender(name, call, servers[name], plan.loop_rpcs) for name, call in probes.items()
    ]
    rows = await measure_side_by_side(
        contenders, concurrency=1, rounds=plan.rounds, within=plan.row_seconds, backend=backend
    )
    for row in rows:
        figures = f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms"
        print(f"  {row.name} {label}: {figures}", file=sys.stderr)
    return {row.name: row for row in rows}
