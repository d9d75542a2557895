"""How many password-hashing threads to run by default: the CPUs this process may use, less one.

argon2 holds a CPU for tens of milliseconds per hash and releases the GIL, so with one thread
per usable CPU, 8 sign-ins in flight leave the event loop no core of its own and every request
behind it waits (GetJwks p99 rose 10.8 x on 2 cores, issue 20). One CPU is left for the loop.
"Usable" is what the container may use, not the host's count: the CPUs of the process's
affinity mask, further capped by the cgroup v2 CPU quota (``cpu.max``) when one is set.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota(cpu_max)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def default_hash_workers(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """One thread per usable CPU but one, which the event loop keeps; at least one."""
    return max(1, usable_cpus(cpu_max) - 1)


def _cgroup_quota(cpu_max: Path) -> float | None:
    """CPUs' worth of time per period that cgroup v2 allows ("max 100000": no quota)."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
