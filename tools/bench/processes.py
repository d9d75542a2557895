"""Child processes: started, waited for, stopped, and their CPU time and memory read from /proc.

Each process under measurement (moto, the services, the floor) is a child of its own, so its
CPU time and resident memory can be read from /proc/<pid>/stat and /proc/<pid>/status apart
from the others (and from the benchmark's own).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.load.instance import InstanceNotReady, log_tail
from tools.load.target import loopback_target, loopback_url

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.01
# A refused connection would otherwise put the channel into gRPC's reconnect backoff (1 s and
# growing), which would be counted as start-up time.
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 50),
]
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process (all its threads, live and exited)."""
    return cpu_seconds_of_stat(Path(f"/proc/{pid}/stat"))


@dataclass(frozen=True)
class ThreadCpu:
    """A process's CPU time split by thread: its main thread, which runs the service's event
    loop, and every other live thread (the password-hashing pool, gRPC's and the metrics'
    threads)."""

    main_thread: float
    other_threads: float

    def __sub__(self, earlier: ThreadCpu) -> ThreadCpu:
        return ThreadCpu(
            self.main_thread - earlier.main_thread, self.other_threads - earlier.other_threads
        )


def thread_cpu_seconds(pid: int) -> ThreadCpu:
    """User plus system CPU time of each live thread of ``pid`` (/proc/<pid>/task/<tid>/stat),
    the main thread's (tid == pid) apart from the rest's. A thread that exits between two
    readings takes its time with it: read it where the threads live as long as the process."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = cpu_seconds_of_stat(task / "stat")
        except FileNotFoundError:  # the thread exited after the listing
            continue
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return ThreadCpu(main, other)


def cpu_seconds_of_stat(path: Path) -> float:
    """User plus system CPU time in a /proc ``stat`` file (a process's or a thread's)."""
    text = path.read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces; it ends at ")"
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14, 15


def rss_bytes(pid: int) -> int:
    """Resident memory of the process (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """One child process of the benchmark, and the file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise InstanceNotReady(
                f"{self.name} exited with code {self.process.returncode}; its log ends with:\n"
                f"{log_tail(self.log_path)}"
            )


async def start_child(name: str, args: list[str], env: Mapping[str, str], logs: Path) -> Child:
    """Starts ``python <args>`` from the repository root, its output into ``logs/<name>.log``."""
    log_path = logs / f"{name}.log"
    with _log_file(log_path) as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    return Child(name, process, log_path)


async def stop_child(child: Child) -> int:
    """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_SECONDS; its exit code."""
    if child.process.returncode is None:
        child.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        child.process.kill()
        return await child.process.wait()


async def wait_until_serving(target: str, child: Child, within: float) -> float:
    """Seconds until the health service at ``target`` says SERVING (polled every 10 ms)."""
    loopback_target(target)
    started = time.monotonic()
    deadline = started + within
    async with grpc.aio.insecure_channel(target, options=_FAST_RECONNECT) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            child.check_alive()
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
            except grpc.aio.AioRpcError:
                pass
            else:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            await asyncio.sleep(_POLL_SECONDS)
    raise InstanceNotReady(
        f"{child.name} at {target} was not SERVING within {within:.0f} s; its log ends with:\n"
        f"{log_tail(child.log_path)}"
    )


async def wait_until_answering(url: str, child: Child, within: float) -> None:
    """Returns once moto's HTTP server answers at ``url``."""
    loopback_url(url)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            await asyncio.to_thread(_get, url + "/moto-api/")
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise InstanceNotReady(f"moto did not answer at {url} within {within:.0f} s")


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=1):  # a loopback URL, checked by the caller
        pass


def _log_file(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")
