"""Closed-loop clients: each of N workers sends its next RPC as soon as the last one ended."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from tools.bench.processes import Child

# (worker, iteration) -> the RPC, already given its deadline; a gRPC error counts as a failure.
Call = Callable[[int, int], Awaitable[Any]]


@dataclass
class Samples:
    """What a closed loop saw: latencies of successful RPCs, failures by status code."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def rpcs(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile_ms(self, percent: float) -> float:
        """Nearest-rank percentile of the successful RPCs' latencies, in milliseconds."""
        values = sorted(self.latencies)
        if not values:
            return math.nan
        rank = max(1, math.ceil(percent / 100 * len(values)))
        return values[rank - 1] * 1000


class ClosedLoop:
    """``concurrency`` workers sending ``call`` until ``count`` were sent or ``within`` passed."""

    def __init__(self, call: Call, *, concurrency: int, count: int, within: float) -> None:
        self._call, self.concurrency, self._count, self._within = call, concurrency, count, within
        self._issued = 0
        self.samples = Samples()

    @property
    def completed(self) -> int:
        return self.samples.rpcs

    async def run(self) -> Samples:
        started = time.monotonic()
        deadline = started + self._within
        await asyncio.gather(*(self._worker(w, deadline) for w in range(self.concurrency)))
        self.samples.seconds = time.monotonic() - started
        return self.samples

    async def _worker(self, worker: int, deadline: float) -> None:
        iteration = 0
        while self._issued < self._count and time.monotonic() < deadline:
            self._issued += 1
            started = time.perf_counter()
            try:
                await self._call(worker, iteration)
            except grpc.aio.AioRpcError as error:
                self.samples.errors[error.code().name] += 1
            else:
                self.samples.latencies.append(time.perf_counter() - started)
            iteration += 1


@dataclass
class Row:
    """One measured row: an RPC at one concurrency, with the server's and backend's CPU."""

    name: str
    concurrency: int
    rpcs: int
    errors: dict[str, int]
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms_per_rpc: float
    backend_cpu_ms_per_rpc: float
    ratio_to_floor: float = math.nan
    ratio_to_limit: float = math.nan  # the stand-in rows: CPU per RPC / the limit row's

    def as_json(self) -> dict[str, Any]:
        return {name: finite(value) for name, value in self.__dict__.items()}


def finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


async def measure_loop(name: str, loop: ClosedLoop, *, server: Child, backend: Child) -> Row:
    """Runs ``loop``; CPU per RPC is the processes' utime + stime over the run, per RPC sent."""
    tally = _Tally()
    await tally.run(loop, server, backend)
    return tally.row(name, loop.concurrency)


@dataclass(frozen=True)
class Contender:
    """One row of a side-by-side measurement: its call, the process serving it, its RPCs."""

    name: str
    call: Call
    server: Child
    count: int


async def measure_side_by_side(
    contenders: list[Contender], *, concurrency: int, rounds: int, within: float, backend: Child
) -> list[Row]:
    """Rows measured in turns: each of ``rounds`` rounds runs every contender's share in turn.

    A shared machine drifts (other processes, frequency, moto's garbage collection); in turns,
    the drift falls on every row alike, so their ratios hold. Each contender sends ``count``
    RPCs in all, or fewer if its share of the run reaches ``within`` seconds.
    """
    tallies = {contender.name: _Tally() for contender in contenders}
    for turn in range(rounds):
        for contender in contenders:
            tally = tallies[contender.name]
            share = contender.count * (turn + 1) // rounds - contender.count * turn // rounds
            left = within - tally.samples.seconds
            if share <= 0 or left <= 0:
                continue
            loop = ClosedLoop(contender.call, concurrency=concurrency, count=share, within=left)
            await tally.run(loop, contender.server, backend)
    return [tallies[c.name].row(c.name, concurrency) for c in contenders]


class _Tally:
    """Samples and CPU seconds, summed over one or more closed loops of one row."""

    def __init__(self) -> None:
        self.samples = Samples()
        self.server_cpu = 0.0
        self.backend_cpu = 0.0

    async def run(self, loop: ClosedLoop, server: Child, backend: Child) -> None:
        server_before, backend_before = server.cpu_seconds(), backend.cpu_seconds()
        samples = await loop.run()
        self.server_cpu += server.cpu_seconds() - server_before
        self.backend_cpu += backend.cpu_seconds() - backend_before
        self.samples.latencies += samples.latencies
        self.samples.errors.update(samples.errors)
        self.samples.seconds += samples.seconds

    def row(self, name: str, concurrency: int) -> Row:
        samples = self.samples
        rpcs = max(samples.rpcs, 1)
        return Row(
            name=name,
            concurrency=concurrency,
            rpcs=samples.rpcs,
            errors=dict(samples.errors),
            seconds=samples.seconds,
            throughput=samples.rpcs / max(samples.seconds, 1e-9),
            p50_ms=samples.percentile_ms(50),
            p99_ms=samples.percentile_ms(99),
            server_cpu_ms_per_rpc=self.server_cpu * 1000 / rpcs,
            backend_cpu_ms_per_rpc=self.backend_cpu * 1000 / rpcs,
        )
