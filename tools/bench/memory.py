"""The service's resident memory over a long run of GetUser: does it stay flat?"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from tools.bench.calls import Calls
from tools.bench.measure import ClosedLoop, measure_loop
from tools.bench.plan import CONCURRENCIES, Plan
from tools.bench.results import LongRun
from tools.bench.stack import Stack

SAMPLE_SECONDS = 0.25
FIRST_PART = 0.10  # RSS once this share of the run is done is compared with RSS at the end


async def measure_long_run(calls: Calls, stack: Stack, plan: Plan) -> LongRun:
    """GetUser at the higher concurrency, ``plan.long_run_rpcs`` times; RSS sampled meanwhile."""
    loop = ClosedLoop(
        calls.get_user,
        concurrency=CONCURRENCIES[-1],
        count=plan.long_run_rpcs,
        within=plan.long_run_seconds,
    )
    samples: list[tuple[int, int]] = []

    async def sample() -> None:
        while True:
            samples.append((loop.completed, stack.service.rss_bytes()))
            await asyncio.sleep(SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    try:
        row = await measure_loop(
            "GetUser (long run)", loop, server=stack.service, backend=stack.moto
        )
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    end = stack.service.rss_bytes()
    samples.append((row.rpcs, end))
    first_part = next(rss for done, rss in samples if done >= FIRST_PART * row.rpcs)
    print(
        f"  long run: {row.rpcs} RPCs in {row.seconds:.0f} s, RSS {first_part / 2**20:.1f} MiB "
        f"after {FIRST_PART:.0%}, {end / 2**20:.1f} MiB at the end",
        file=sys.stderr,
    )
    return LongRun(row, samples, first_part, end, max(rss for _, rss in samples))
