"""How much the benchmark sends: the full run's sizes, and the tiny ones of ``--quick``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

CONCURRENCIES = (1, 16)
LOOP_LOAD_WORKERS = 8  # Authenticate calls in flight while GetUser's p99 is measured


@dataclass(frozen=True)
class Plan:
    """Sizes and bounds of one run."""

    quick: bool
    base_users: int  # users stored while the rows are measured, and the small scale point
    scale_users: int  # the large scale point
    read_rpcs: tuple[int, int]  # per row, at concurrency 1 and 16: floor, GetUser, GetUserByEmail
    page_rpcs: tuple[int, int]  # ListUsers (moto's Scan sorts the whole table every time)
    write_rpcs: tuple[int, int]  # RefreshSession (moto copies the table for every transaction)
    hash_rpcs: tuple[int, int]  # RegisterUser, Authenticate: argon2 on every call
    scale_rpcs: int  # GetUser and GetUserByEmail at each scale point, concurrency 1
    scale_page_rpcs: int  # ListUsers at each scale point
    rounds: int  # rows measured side by side are measured in this many turns
    loop_rpcs: int  # each probe's calls alone, and again under sign-ins (on the stand-in)
    long_run_rpcs: int  # GetUser calls of the memory run
    startup_runs: int
    row_seconds: float  # bound of each row (it stops early, with fewer RPCs, if reached)
    long_run_seconds: float
    seed_seconds: float  # bound of each seeding
    seed_in_flight: int
    rpc_timeout: float
    warmup_rpcs: int
    service_settings: tuple[tuple[str, str], ...] = ()  # USER_SERVICE_* given to the service
    embedded_speedups: bool = True  # the embedded-scale rows with server/embedded_moto_speedups.py
    cpu_rows_only: bool = False  # --cpu-rows-only: just the stand-in rows
    loop_only: bool = False  # --loop-only: just the event loop under sign-ins

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan(
    quick=False,
    base_users=1_000,
    scale_users=100_000,
    read_rpcs=(500, 1_000),
    page_rpcs=(100, 150),
    write_rpcs=(100, 200),
    hash_rpcs=(50, 100),
    scale_rpcs=300,
    scale_page_rpcs=30,
    rounds=5,
    loop_rpcs=1_000,
    long_run_rpcs=50_000,
    startup_runs=3,
    row_seconds=60.0,
    long_run_seconds=300.0,
    seed_seconds=1_800.0,
    seed_in_flight=4,
    rpc_timeout=10.0,
    warmup_rpcs=20,
)

QUICK = replace(
    FULL,
    quick=True,
    base_users=200,
    scale_users=400,
    read_rpcs=(30, 48),
    page_rpcs=(10, 16),
    write_rpcs=(16, 32),
    hash_rpcs=(4, 16),
    scale_rpcs=20,
    scale_page_rpcs=6,
    rounds=2,
    loop_rpcs=20,
    long_run_rpcs=400,
    startup_runs=1,
    row_seconds=20.0,
    long_run_seconds=30.0,
    seed_seconds=60.0,
    warmup_rpcs=5,
)
