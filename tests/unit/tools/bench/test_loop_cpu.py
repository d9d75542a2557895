"""The event-loop check's CPU by thread: the service's loop thread apart from its other threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tools.bench.measure import Row
from tools.bench.processes import ThreadCpu, cpu_seconds_of_stat, thread_cpu_seconds
from tools.bench.results import LoopProtection

# A /proc stat line whose name holds spaces and a ")": utime 250, stime 50 clock ticks.
STAT = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 100 0 0\n"


def test_a_stat_files_cpu_is_its_user_and_system_time(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    assert cpu_seconds_of_stat(stat) == pytest.approx(300 / _clock_ticks())


def test_cpu_burnt_on_another_thread_is_not_the_main_threads() -> None:
    before = thread_cpu_seconds(os.getpid())
    done = threading.Event()

    def burn() -> None:
        deadline = time.thread_time() + 0.3
        while time.thread_time() < deadline:
            pass
        done.set()
        time.sleep(1)  # alive while the second reading is taken: an exited thread's time goes

    worker = threading.Thread(target=burn)
    worker.start()
    done.wait()
    spent = thread_cpu_seconds(os.getpid()) - before
    worker.join()
    # Read in clock ticks: the other threads' 0.3 s shows (within a tick or two); the main
    # thread, waiting on the event, spends next to none.
    assert spent.other_threads >= 0.25
    assert spent.main_thread < spent.other_threads


def _row(name: str, rpcs: int) -> Row:
    return Row(
        name=name,
        concurrency=1,
        rpcs=rpcs,
        errors={},
        seconds=1.0,
        throughput=float(rpcs),
        p50_ms=1.0,
        p99_ms=2.0,
        server_cpu_ms_per_rpc=1.0,
        backend_cpu_ms_per_rpc=0.5,
    )


def _loop(
    *, loop_alone: float, loop_under: float, other_alone: float, other_under: float
) -> LoopProtection:
    return LoopProtection(
        alone={"GetUser": _row("GetUser", 1000)},
        under_sign_ins={"GetUser": _row("GetUser", 1000)},
        sign_in_workers=8,
        sign_ins_completed=120,
        sign_in_errors={},
        backend="stand-in",
        hash_workers=1,
        sign_ins_during_probes=100,
        client_cpu_seconds_alone=1.0,
        client_cpu_seconds_under=1.0,
        service_loop_cpu_seconds_alone=loop_alone,
        service_loop_cpu_seconds_under=loop_under,
        service_other_cpu_seconds_alone=other_alone,
        service_other_cpu_seconds_under=other_under,
        service_probe_rpcs_alone=2000,
        service_probe_rpcs_under=1000,
    )


def test_the_loops_cpu_per_sign_in_leaves_out_the_probes_own() -> None:
    # Alone, 2,000 probes cost the loop 2 s; under sign-ins it answered 1,000 of them (1 s of
    # its 1.7 s), so 100 sign-ins cost it 0.7 s: 7 ms each.
    loop = _loop(loop_alone=2.0, loop_under=1.7, other_alone=0.01, other_under=2.51)
    assert loop.loop_ms_per_sign_in == pytest.approx(7.0)
    assert loop.other_threads_ms_per_sign_in == pytest.approx(25.0)
    figures = loop.as_json()
    assert figures["loop_ms_per_sign_in"] == pytest.approx(7.0)
    assert figures["service_probe_rpcs_under"] == 1000


def test_thread_cpu_readings_subtract_thread_by_thread() -> None:
    assert ThreadCpu(3.0, 5.0) - ThreadCpu(1.0, 1.5) == ThreadCpu(2.0, 3.5)


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")
