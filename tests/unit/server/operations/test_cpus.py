"""The CPUs this process may use: the affinity mask, capped by a cgroup CPU quota (v2 or v1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.operations.cpus import cgroup_cpu_quota, usable_cpus
from server.settings import Settings, default_password_hash_workers

V2_ONLY = "0::/\n"
V1_ONLY = "12:pids:/\n4:cpu,cpuacct:/\n2:memory:/\n"


def _cgroups(tmp_path: Path, membership: str = V2_ONLY) -> tuple[Path, Path]:
    """An empty cgroup mount under tmp_path and a /proc/self/cgroup naming ``membership``."""
    root = tmp_path / "cgroup"
    root.mkdir()
    proc_self_cgroup = tmp_path / "proc-self-cgroup"
    proc_self_cgroup.write_text(membership)
    return root, proc_self_cgroup


def _usable(root: Path, proc_self_cgroup: Path, affinity: int) -> int:
    return usable_cpus(
        cgroup_root=root, proc_self_cgroup=proc_self_cgroup, affinity=lambda: affinity
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_without_a_quota_it_is_the_affinity_mask(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", "max 100000\n")

    assert _usable(root, proc, affinity=6) == 6
    assert cgroup_cpu_quota(cgroup_root=root, proc_self_cgroup=proc) is None


def test_a_v2_quota_caps_the_affinity_rounded_up(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", "250000 100000\n")  # 2.5 CPUs' worth of time

    assert cgroup_cpu_quota(cgroup_root=root, proc_self_cgroup=proc) == 2.5
    assert _usable(root, proc, affinity=16) == 3


def test_the_affinity_caps_a_larger_quota(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", "800000 100000\n")

    assert _usable(root, proc, affinity=2) == 2


def test_a_fraction_of_a_cpu_still_gets_one(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", "20000 100000\n")  # 0.2 CPU

    assert _usable(root, proc, affinity=8) == 1


def test_the_process_own_cgroup_and_its_parents_are_read_the_smallest_wins(
    tmp_path: Path,
) -> None:
    root, proc = _cgroups(tmp_path, "0::/kubepods/pod1/container\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods" / "pod1" / "cpu.max", "300000 100000\n")  # the pod: 3 CPUs
    _write(root / "kubepods" / "pod1" / "container" / "cpu.max", "max 100000\n")

    assert _usable(root, proc, affinity=64) == 3

    _write(root / "kubepods" / "pod1" / "container" / "cpu.max", "150000 100000\n")
    assert _usable(root, proc, affinity=64) == 2


def test_a_v1_cfs_quota_caps_the_affinity(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path, V1_ONLY)
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "150000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")

    assert _usable(root, proc, affinity=32) == 2


def test_a_v1_quota_of_minus_one_is_none(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path, V1_ONLY)
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")

    assert _usable(root, proc, affinity=4) == 4


def test_v1_reads_the_cpu_controllers_own_path(tmp_path: Path) -> None:
    root, proc = _cgroups(tmp_path, "3:memory:/elsewhere\n2:cpu:/docker/abc\n0::/\n")
    _write(root / "cpu" / "docker" / "abc" / "cpu.cfs_quota_us", "100000\n")
    _write(root / "cpu" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")

    assert _usable(root, proc, affinity=8) == 1


@pytest.mark.parametrize("text", ["garbage\n", "", "100000\n", "0 100000\n", "100000 0\n"])
def test_an_unreadable_quota_sets_no_limit(tmp_path: Path, text: str) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", text)

    assert _usable(root, proc, affinity=5) == 5


def test_no_cgroup_files_at_all_leave_the_affinity(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"

    assert usable_cpus(cgroup_root=missing, proc_self_cgroup=missing, affinity=lambda: 3) == 3


def test_the_affinity_mask_is_read_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)

    assert usable_cpus(cgroup_root=Path("/nonexistent"), proc_self_cgroup=Path("/none")) == 3


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (4, 3), (64, 63)])
def test_the_hashing_pool_leaves_the_event_loop_a_cpu(cpus: int, threads: int) -> None:
    assert default_password_hash_workers(lambda: cpus) == threads


@pytest.mark.parametrize(
    ("quota", "affinity", "threads"),
    [
        ("50000 100000", 8, 1),  # half a CPU: one thread all the same
        ("100000 100000", 8, 1),  # one CPU
        ("150000 100000", 8, 1),  # 1.5 CPUs count as 2: one for the loop, one for hashing
        ("200000 100000", 8, 1),
        ("250000 100000", 8, 2),
        ("400000 100000", 64, 3),  # the quota, not the node's 64 CPUs
        ("400000 100000", 2, 1),  # the affinity mask below the quota
        ("max 100000", 4, 3),  # no quota: the affinity mask
    ],
)
def test_the_hashing_threads_count_the_cpus_a_quota_leaves(
    tmp_path: Path, quota: str, affinity: int, threads: int
) -> None:
    root, proc = _cgroups(tmp_path)
    _write(root / "cpu.max", f"{quota}\n")

    assert default_password_hash_workers(lambda: _usable(root, proc, affinity)) == threads


def test_the_settings_default_is_the_usable_cpus_less_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("USER_SERVICE_PASSWORD_HASH_WORKERS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6}, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 99)

    assert usable_cpus() <= 7  # the host's 99 are not counted; a quota here may lower the 7
    assert Settings().password_hash_workers == max(1, usable_cpus() - 1)

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3}, raising=False)
    assert Settings().password_hash_workers == 1

    monkeypatch.setenv("USER_SERVICE_PASSWORD_HASH_WORKERS", "9")
    assert Settings().password_hash_workers == 9
