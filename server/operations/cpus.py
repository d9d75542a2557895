"""How many CPUs this process may use: what a container is given, not the host's count.

``os.cpu_count()`` counts the host's CPUs. A container is usually given fewer, in two ways: an
affinity mask (``docker --cpuset-cpus``, Kubernetes' static CPU manager), which
``os.sched_getaffinity`` reads, and a CFS quota (``docker --cpus``, Kubernetes CPU limits): so
many microseconds of CPU time per period, in cgroup v2's ``cpu.max`` ("max 100000" when there is
no quota, "<quota> <period>" when there is) or cgroup v1's ``cpu.cfs_quota_us`` (-1: none) and
``cpu.cfs_period_us``. The usable CPUs are the smallest of these, the quota rounded up (1.5 CPUs'
worth of time keeps two threads busy part of the time), and at least one.

The quota is read from the process's own cgroup (``/proc/self/cgroup``) and each cgroup above it
up to the mount point, since a parent's quota binds its children too; in a container, whose
cgroup namespace starts at its own cgroup, that is the mount point itself. A file that is absent
or unreadable sets no limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Where cgroup v1 mounts the cpu controller (alone, or together with cpuacct).
_V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def usable_cpus(
    *,
    cgroup_root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    affinity: Callable[[], int] | None = None,
) -> int:
    """The CPUs this process may use: its affinity mask, capped by any CFS quota (rounded up)."""
    cpus = (affinity or _affinity)()
    quota = cgroup_cpu_quota(cgroup_root=cgroup_root, proc_self_cgroup=proc_self_cgroup)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(
    *, cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The smallest CFS quota, in CPUs, over this process's cgroup and those above it; None if
    none is set (or none can be read)."""
    quotas = [
        quota
        for directory in _cgroup_directories(cgroup_root, proc_self_cgroup)
        if (quota := _quota_in(directory)) is not None
    ]
    return min(quotas, default=None)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks on this platform
        return os.cpu_count() or 1


def _cgroup_directories(root: Path, proc_self_cgroup: Path) -> Iterator[Path]:
    """The directories that may hold this process's CPU quota: its own cgroup's and each above
    it, in the v2 hierarchy and in v1's cpu controller."""
    v2_path, v1_path = _own_cgroup_paths(proc_self_cgroup)
    yield from _up_to(root, v2_path)
    for mount in _V1_CPU_MOUNTS:
        if (root / mount).is_dir():
            yield from _up_to(root / mount, v1_path)
            break


def _own_cgroup_paths(proc_self_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup in the v2 hierarchy and in v1's cpu controller ("/" if unknown)."""
    v2, v1 = "/", "/"
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _up_to(mount: Path, cgroup: str) -> Iterator[Path]:
    """``mount`` joined with ``cgroup``, then each parent up to ``mount`` itself."""
    parts = PurePosixPath(cgroup).parts[1:]  # without the leading "/"
    if ".." in parts:
        parts = ()
    for depth in range(len(parts), -1, -1):
        yield mount.joinpath(*parts[:depth])


def _quota_in(directory: Path) -> float | None:
    """The quota one cgroup directory sets, in CPUs (v2's cpu.max, else v1's cfs files)."""
    try:
        fields = (directory / "cpu.max").read_text().split()
    except OSError:
        pass
    else:
        if len(fields) == 2 and fields[0] != "max":
            return _ratio(fields[0], fields[1])
        return None
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:  # v1's -1: no quota
        return None
    return quota_us / period_us
