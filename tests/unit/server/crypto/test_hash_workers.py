"""The default number of password-hashing threads leaves the event loop a CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.crypto.hash_workers import default_hash_workers, usable_cpus
from server.settings import Settings


def _affinity(monkeypatch: pytest.MonkeyPatch, cpus: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))


def test_one_thread_per_usable_cpu_but_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _affinity(monkeypatch, 4)

    assert default_hash_workers(tmp_path / "no-cgroup") == 3


def test_one_cpu_still_gets_one_hashing_thread(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _affinity(monkeypatch, 1)

    assert default_hash_workers(tmp_path / "no-cgroup") == 1


def test_a_cgroup_quota_caps_the_cpus_rounded_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _affinity(monkeypatch, 16)
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("250000 100000\n")  # 2.5 CPUs

    assert usable_cpus(cpu_max) == 3
    assert default_hash_workers(cpu_max) == 2


@pytest.mark.parametrize("text", ["max 100000\n", "garbage\n", ""])
def test_no_quota_or_an_unreadable_one_leaves_the_affinity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    _affinity(monkeypatch, 6)
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(text)

    assert usable_cpus(cpu_max) == 6


def test_the_setting_defaults_to_it_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USER_SERVICE_PASSWORD_HASH_WORKERS", raising=False)
    assert Settings().password_hash_workers == default_hash_workers()

    monkeypatch.setenv("USER_SERVICE_PASSWORD_HASH_WORKERS", "7")
    assert Settings().password_hash_workers == 7
