"""Everything one run measured, as plain data for the goals, the report and results.json."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tools.bench.capacity.results import CapacityResults
from tools.bench.measure import Row, finite
from tools.bench.plan import Plan


@dataclass
class ScalePoint:
    """p50 and CPU per RPC of the read paths (concurrency 1) with ``users`` users stored."""

    users: int
    rows: dict[str, Row]

    def as_json(self) -> dict[str, Any]:
        return {"users": self.users, "rows": {k: v.as_json() for k, v in self.rows.items()}}


@dataclass
class EmbeddedScale:
    """RegisterUser and ListUsers on the embedded server's moto, at each size; seeding times."""

    speedups: bool  # server/embedded_moto_speedups.py applied
    points: list[ScalePoint] = field(default_factory=list)
    seeding_seconds: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "speedups": self.speedups,
            "points": [point.as_json() for point in self.points],
            "seeding_seconds": self.seeding_seconds,
        }


@dataclass
class LoopProtection:
    """Probes (GetUser, and two that tell causes apart) alone, then while sign-ins run.

    ``alone`` and ``under_sign_ins`` map a probe's name to its row; "GetUser" is the goal's.
    The client CPU figures are the benchmark process's own (probes, and sign-ins when they run).
    """

    alone: dict[str, Row]
    under_sign_ins: dict[str, Row]
    sign_in_workers: int
    sign_ins_completed: int
    sign_in_errors: dict[str, int]
    backend: str
    hash_workers: int  # the service's password-hashing threads
    sign_ins_during_probes: int
    client_cpu_seconds_alone: float
    client_cpu_seconds_under: float
    # The service's CPU in each phase, on its event loop's thread and on its other threads
    # (the hashing pool, with gRPC's and the metrics' threads): tools.bench.processes.ThreadCpu.
    service_loop_cpu_seconds_alone: float
    service_loop_cpu_seconds_under: float
    service_other_cpu_seconds_alone: float
    service_other_cpu_seconds_under: float
    service_probe_rpcs_alone: int  # the probes the service answered in each phase
    service_probe_rpcs_under: int

    @property
    def loop_ms_per_sign_in(self) -> float:
        """The event loop's CPU per sign-in: its CPU under sign-ins less what the probes cost
        it alone (scaled to the probes it answered then), over the sign-ins completed."""
        probes = self.service_loop_cpu_seconds_alone * (
            self.service_probe_rpcs_under / max(self.service_probe_rpcs_alone, 1)
        )
        sign_ins = self.service_loop_cpu_seconds_under - probes
        return 1000 * sign_ins / self.sign_ins_during_probes if self.sign_ins_during_probes else 0.0

    @property
    def other_threads_ms_per_sign_in(self) -> float:
        """The service's other threads' CPU per sign-in (password hashing, in the main)."""
        extra = self.service_other_cpu_seconds_under - self.service_other_cpu_seconds_alone
        return 1000 * extra / self.sign_ins_during_probes if self.sign_ins_during_probes else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "alone": {name: row.as_json() for name, row in self.alone.items()},
            "under_sign_ins": {name: row.as_json() for name, row in self.under_sign_ins.items()},
            "sign_in_workers": self.sign_in_workers,
            "sign_ins_completed": self.sign_ins_completed,
            "sign_in_errors": self.sign_in_errors,
            "backend": self.backend,
            "hash_workers": self.hash_workers,
            "sign_ins_during_probes": self.sign_ins_during_probes,
            "client_cpu_seconds_alone": self.client_cpu_seconds_alone,
            "client_cpu_seconds_under": self.client_cpu_seconds_under,
            "service_loop_cpu_seconds_alone": self.service_loop_cpu_seconds_alone,
            "service_loop_cpu_seconds_under": self.service_loop_cpu_seconds_under,
            "service_other_cpu_seconds_alone": self.service_other_cpu_seconds_alone,
            "service_other_cpu_seconds_under": self.service_other_cpu_seconds_under,
            "service_probe_rpcs_alone": self.service_probe_rpcs_alone,
            "service_probe_rpcs_under": self.service_probe_rpcs_under,
            "loop_ms_per_sign_in": self.loop_ms_per_sign_in,
            "other_threads_ms_per_sign_in": self.other_threads_ms_per_sign_in,
        }


@dataclass
class StartUp:
    """``python -m server serve`` with the embedded default: time to SERVING, idle memory."""

    seconds: list[float]
    idle_rss_bytes: list[int]

    @property
    def median_seconds(self) -> float:
        return _median(self.seconds)

    @property
    def median_idle_rss_bytes(self) -> float:
        return _median([float(value) for value in self.idle_rss_bytes])

    def as_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "idle_rss_bytes": self.idle_rss_bytes,
            "median_seconds": finite(self.median_seconds),
            "median_idle_rss_bytes": finite(self.median_idle_rss_bytes),
        }


@dataclass
class LongRun:
    """The service's resident memory sampled during a long run of GetUser."""

    row: Row
    samples: list[tuple[int, int]]  # (RPCs completed, RSS bytes)
    rss_after_first_tenth: int
    rss_at_end: int
    rss_peak: int

    @property
    def growth(self) -> float:
        return (self.rss_at_end - self.rss_after_first_tenth) / max(self.rss_after_first_tenth, 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.row.as_json(),
            "rss_after_first_tenth": self.rss_after_first_tenth,
            "rss_at_end": self.rss_at_end,
            "rss_peak": self.rss_peak,
            "growth": self.growth,
            "samples": self.samples,
        }


@dataclass
class Seeding:
    """How long writing the seeded users took, per seeding."""

    users: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    batch_requests: int = 0
    unprocessed_retries: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "seconds": self.seconds,
            "users_per_second": [
                users / max(seconds, 1e-9)
                for users, seconds in zip(self.users, self.seconds, strict=True)
            ],
            "batch_requests": self.batch_requests,
            "unprocessed_retries": self.unprocessed_retries,
        }


@dataclass
class Results:
    """One run of the benchmark."""

    machine: dict[str, Any]
    plan: Plan
    rows: list[Row] = field(default_factory=list)
    standin_rows: list[Row] = field(default_factory=list)  # floor, limit, service on the stand-in
    scale: list[ScalePoint] = field(default_factory=list)
    loop: LoopProtection | None = None
    startup: StartUp | None = None
    long_run: LongRun | None = None
    capacity: CapacityResults | None = None  # units per RPC (tools.bench.capacity)
    seeding: Seeding = field(default_factory=Seeding)
    embedded_scale: EmbeddedScale | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    load_average_at_end: list[float] = field(default_factory=list)

    def row(self, name: str, concurrency: int) -> Row | None:
        rows = (*self.rows, *self.standin_rows)
        return next((r for r in rows if r.name == name and r.concurrency == concurrency), None)

    @property
    def rpc_errors(self) -> int:
        rows = [
            *self.rows,
            *self.standin_rows,
            *(r for point in self.scale for r in point.rows.values()),
        ]
        if self.embedded_scale is not None:
            rows += [r for point in self.embedded_scale.points for r in point.rows.values()]
        if self.loop is not None:
            rows += [*self.loop.alone.values(), *self.loop.under_sign_ins.values()]
        if self.long_run is not None:
            rows.append(self.long_run.row)
        errors = sum(sum(row.errors.values()) for row in rows)
        return errors + (sum(self.loop.sign_in_errors.values()) if self.loop else 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "plan": self.plan.as_json(),
            "rows": [row.as_json() for row in self.rows],
            "standin_rows": [row.as_json() for row in self.standin_rows],
            "scale": [point.as_json() for point in self.scale],
            "loop_protection": self.loop.as_json() if self.loop else None,
            "startup": self.startup.as_json() if self.startup else None,
            "long_run": self.long_run.as_json() if self.long_run else None,
            "capacity": self.capacity.as_json() if self.capacity else None,
            "seeding": self.seeding.as_json(),
            "embedded_scale": self.embedded_scale.as_json() if self.embedded_scale else None,
            "phase_seconds": self.phase_seconds,
            "total_seconds": self.total_seconds,
            "load_average_at_end": self.load_average_at_end,
            "rpc_errors": self.rpc_errors,
        }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
