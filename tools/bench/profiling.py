"""``make bench BENCH_ARGS=--profile``: where the service's CPU goes, by layer, beside its limit.

The service runs as ``make run`` would (a process of its own, the access log and metrics on, as
in the CPU rows), and its limit (``tools.bench.limit``) beside it, both against the keep-alive
DynamoDB stand-in (``tools.bench.standin``). The benchmark sends each GetUser, then
RefreshSession, at concurrency 1. For each, one window is measured without a profiler (server
CPU per RPC, user and system, as the CPU rows measure it) and one under it:

- **py-spy** when it is installed (``.venv/bin/pip install py-spy``), the better profile: it
  samples the process from outside (``--nonblocking``, at ``PY_SPY_RATE`` a second), so the
  server runs as it would. It samples with ``--gil``, only the thread holding the GIL: without
  it a thread that is runnable but waiting for a CPU counts as busy, which on this shared
  2-core machine put a third of the service's samples in ``epoll_wait``. With it, the time a
  thread spends in the kernel (sockets, epoll) is not sampled; that is the process's system
  time, shown as a row of its own, and the layers share its user time.
- else **cProfile**, inside the server (``tools.bench.profiled_service``, switched on and off by
  signals around the window, timed by the thread's CPU clock): every call is counted, but its
  own cost per call inflates the small functions, so its shares lean towards code that makes
  many small calls, and its inclusive times are rough for coroutines. The layers share the
  whole CPU per RPC.

The profile is grouped by layer (``tools.bench.profile_layers``). It writes ``profile.json`` and
``profile.md`` into ``--out`` and prints the Markdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pstats
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from biome.user.v1.user_service_pb2_grpc import UserServiceStub

from tools.bench.calls import Calls
from tools.bench.machine import describe_machine, load_average
from tools.bench.measure import Call, ClosedLoop, Row, finite, measure_loop
from tools.bench.plan import Plan
from tools.bench.processes import HOST, Child, free_port, stop_child
from tools.bench.profile_layers import (
    LAYER_NAMES,
    Breakdown,
    breakdown_of_pstats,
    breakdown_of_stacks,
    parse_collapsed,
)
from tools.bench.rows import warm_up
from tools.bench.standin_stack import running_standin, start_on_standin

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

KINDS = ("GetUser", "RefreshSession")
SERVERS = {"service": "server", "limit": "tools.bench.limit"}  # name: module run
CONCURRENCY = 1
PY_SPY_RATE = 1000  # samples a second
# RPCs in each window (unprofiled, then profiled): full run, --quick
WINDOW_RPCS = {"GetUser": (4_000, 60), "RefreshSession": (1_500, 30)}
PROFILE_FILE_TIMEOUT_SECONDS = 30.0
PY_SPY_ATTACH_TIMEOUT_SECONDS = 20.0
TOP_FUNCTIONS = 15
PROFILERS = ("auto", "py-spy", "cprofile")
KERNEL_ROW = "kernel (system time: sockets, epoll)"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Profile:
    """One RPC kind's profile on one server (the service, or its limit): CPU per RPC without
    and with the profiler, and its breakdown."""

    rpc: str
    server: str  # "service" or "limit"
    concurrency: int
    profiler: str
    rpcs: int
    errors: dict[str, int]
    cpu_ms_per_rpc: float  # without the profiler
    user_ms_per_rpc: float  # of which user time
    system_ms_per_rpc: float  # and system time (the kernel: sockets, epoll)
    profiled_cpu_ms_per_rpc: float  # in the profiled window (py-spy's own CPU is not in it)
    # py-spy's samples per RPC as milliseconds (the GIL held, including while waiting for a CPU)
    sampled_ms_per_rpc: float
    breakdown: Breakdown

    @property
    def layers_share_ms(self) -> float:
        """The CPU per RPC the layers' self shares divide: py-spy --gil samples user time (the
        system time is a row of its own), cProfile's thread clock counts both."""
        return self.user_ms_per_rpc if self.breakdown.unit == "samples" else self.cpu_ms_per_rpc

    def as_json(self) -> dict[str, Any]:
        return {
            name: finite(value) for name, value in self.__dict__.items() if name != "breakdown"
        } | self.breakdown.as_json()


def find_py_spy() -> str | None:
    """py-spy's executable: beside this Python's (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def choose_profiler(asked: str) -> str:
    """ "py-spy" or "cprofile": what was asked, or for "auto" py-spy when it is installed."""
    if asked == "auto":
        return "py-spy" if find_py_spy() is not None else "cprofile"
    if asked == "py-spy" and find_py_spy() is None:
        raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
    return asked


async def measure_profiles(
    plan: Plan, logs: Path, password_hash: str, random_seed: int | None, *, profiler: str
) -> list[Profile]:
    """Profiles of each of KINDS at concurrency 1, of the service and of its limit, side by side
    on the stand-in (the limit's refresh chains start with sign-ins on the service)."""
    async with contextlib.AsyncExitStack() as exits:
        standin = await exits.enter_async_context(running_standin(logs, password_hash))
        servers: dict[str, tuple[Child, Calls, Path]] = {}
        sign_ins: UserServiceAsyncStub | None = None
        for server, module in SERVERS.items():
            stats_file = _fresh(logs / f"{server}.pstats")
            args = ["-m", module] + (["serve"] if module == "server" else [])
            if profiler == "cprofile":
                args = ["-m", "tools.bench.profiled_service", "--output", str(stats_file)]
                args += ["--limit"] if server == "limit" else []
            port = free_port()
            child = await start_on_standin(
                f"{server}-profiled", args, port, standin, logs, plan.service_settings
            )
            exits.push_async_callback(stop_child, child)
            channel = await exits.enter_async_context(grpc.aio.insecure_channel(f"{HOST}:{port}"))
            stub = UserServiceStub(channel)
            sign_ins = sign_ins or stub  # the service's, started first
            calls = Calls(
                stub,
                stub,
                standin.seeded,
                rpc_timeout=plan.rpc_timeout,
                seed=random_seed,
                sign_ins=sign_ins,
            )
            await calls.open_refresh_chains(CONCURRENCY)
            servers[server] = child, calls, stats_file
        profiles = []
        for kind in KINDS:
            for server, (child, calls, stats_file) in servers.items():
                call = calls.get_user if kind == "GetUser" else calls.refresh_session
                await warm_up(call, plan)
                count = WINDOW_RPCS[kind][1 if plan.quick else 0]
                window = Window(kind, server, call, count, plan.row_seconds, child, standin.child)
                profiles.append(await _profile(window, profiler, logs, stats_file))
        return profiles


@dataclass(frozen=True)
class Window:
    """What one profile measures: ``count`` calls of one RPC kind against one server."""

    kind: str
    server: str
    call: Call
    count: int
    within: float
    child: Child
    backend: Child

    def loop(self) -> ClosedLoop:
        return ClosedLoop(self.call, concurrency=CONCURRENCY, count=self.count, within=self.within)


async def _profile(window: Window, profiler: str, logs: Path, stats_file: Path) -> Profile:
    """The window run twice: without the profiler (CPU per RPC, user and system), then under it."""
    name = f"{window.server} {window.kind}"
    before = cpu_times(window.child.pid)
    plain = await measure_loop(name, window.loop(), server=window.child, backend=window.backend)
    user, system = (
        after - first for after, first in zip(cpu_times(window.child.pid), before, strict=True)
    )
    rpcs = max(plain.rpcs, 1)
    print(f"  {name}: {plain.server_cpu_ms_per_rpc:.3f} ms CPU/RPC", file=sys.stderr)
    if profiler == "py-spy":
        profiled, breakdown, label = await _under_py_spy(window, logs)
    else:
        profiled, breakdown, label = await _under_cprofile(window, stats_file)
    print(
        f"  {name} under {label}: {profiled.server_cpu_ms_per_rpc:.3f} ms CPU/RPC, "
        f"{breakdown.samples} {breakdown.unit}",
        file=sys.stderr,
    )
    return Profile(
        rpc=window.kind,
        server=window.server,
        concurrency=CONCURRENCY,
        profiler=label,
        rpcs=profiled.rpcs,
        errors={**plain.errors, **profiled.errors},
        cpu_ms_per_rpc=plain.server_cpu_ms_per_rpc,
        user_ms_per_rpc=user * 1000 / rpcs,
        system_ms_per_rpc=system * 1000 / rpcs,
        profiled_cpu_ms_per_rpc=profiled.server_cpu_ms_per_rpc,
        sampled_ms_per_rpc=breakdown.samples * 1000 / PY_SPY_RATE / max(profiled.rpcs, 1)
        if breakdown.unit == "samples"
        else math.nan,
        breakdown=breakdown,
    )


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of the process (all its threads)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


async def _under_py_spy(window: Window, logs: Path) -> tuple[Row, Breakdown, str]:
    executable = find_py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed")
    output = _fresh(logs / f"py-spy-{window.server}-{window.kind}.txt")
    async with _py_spy_recording(executable, window.child.pid, output):
        row = await measure_loop(
            window.kind, window.loop(), server=window.child, backend=window.backend
        )
    stacks = parse_collapsed(_read(output))
    label = f"py-spy --gil, {PY_SPY_RATE} Hz, non-blocking"
    return row, breakdown_of_stacks(stacks, top=TOP_FUNCTIONS), label


@contextlib.asynccontextmanager
async def _py_spy_recording(executable: str, pid: int, output: Path) -> AsyncIterator[None]:
    """py-spy recording ``pid`` into ``output`` (collapsed stacks) while the block runs."""
    process = await asyncio.create_subprocess_exec(
        executable,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(PY_SPY_RATE),
        "--nonblocking",
        "--gil",
        "--full-filenames",
        "--format",
        "raw",
        "--output",
        str(output),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    said: list[bytes] = []
    try:
        # It says so once it samples; the window starts then.
        deadline = time.monotonic() + PY_SPY_ATTACH_TIMEOUT_SECONDS
        while not any(b"Sampling process" in line for line in said):
            left = deadline - time.monotonic()
            line = await asyncio.wait_for(process.stdout.readline(), max(left, 0.01))
            if not line:
                raise RuntimeError(f"py-spy stopped: {b''.join(said).decode(errors='replace')}")
            said.append(line)
        yield
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # it writes the file, then exits
        rest = await asyncio.wait_for(process.stdout.read(), PROFILE_FILE_TIMEOUT_SECONDS)
        await process.wait()
        said.append(rest)
    if not _exists(output):
        raise RuntimeError(f"py-spy wrote no profile: {b''.join(said).decode(errors='replace')}")


async def _under_cprofile(window: Window, stats_file: Path) -> tuple[Row, Breakdown, str]:
    _fresh(stats_file)
    service = window.child
    os.kill(service.pid, signal.SIGUSR1)
    try:
        row = await measure_loop(window.kind, window.loop(), server=service, backend=window.backend)
    finally:
        os.kill(service.pid, signal.SIGUSR2)
    deadline = time.monotonic() + PROFILE_FILE_TIMEOUT_SECONDS
    while not _exists(stats_file):
        service.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service wrote no profile into {stats_file}")
        await asyncio.sleep(0.05)
    stats = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]  # not in typeshed
    label = "cProfile, inside the server"
    return row, breakdown_of_pstats(stats, top=TOP_FUNCTIONS), label


def _fresh(path: Path) -> Path:
    """``path`` (absolute), its folder made and any earlier file there removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return path.resolve()


def _exists(path: Path) -> bool:
    return path.exists()


def _read(path: Path) -> str:
    return path.read_text()


def write_profiles(profiles: list[Profile], machine: dict[str, Any], out: Path) -> list[Path]:
    """profile.json and profile.md into ``out`` (kept out of git, as the results are)."""
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# Written by `make bench`: results are not committed.\n*\n")
    document = {
        "machine": machine,
        "load_average_at_end": load_average(),
        "profiles": [profile.as_json() for profile in profiles],
    }
    written = [out / "profile.json", out / "profile.md"]
    written[0].write_text(json.dumps(document, indent=2) + "\n")
    written[1].write_text(profile_markdown(profiles, machine))
    return written


def profile_markdown(profiles: list[Profile], machine: dict[str, Any] | None = None) -> str:
    machine = machine or describe_machine()
    load = ", ".join(f"{value:.2f}" for value in machine["load_average_at_start"])
    lines = [
        "# Where the service's CPU goes, against its limit, on the keep-alive stand-in",
        "",
        f"- Date: {machine['date']}; {machine['cpu_model']}, {machine['cores']} cores; "
        f"{machine['python']}; load average at the start {load}",
        "- Self %: each sample (or second) given to the innermost layer on its stack (the "
        "standard library counts as its caller); they add up to 100. ms/RPC: that share of the "
        "server CPU per RPC measured without the profiler (py-spy: of its user time, the "
        "system time being the kernel row; cProfile: of all of it). Inclusive %: the layer and "
        "all it calls. The limit (tools/bench/limit.py) is the bare handler plus the minimal "
        "signed requests, for the same RPC.",
    ]
    for kind in dict.fromkeys(profile.rpc for profile in profiles):
        by_server = {profile.server: profile for profile in profiles if profile.rpc == kind}
        service, limit = by_server.get("service"), by_server.get("limit")
        lines += ["", f"## {kind}, concurrency {CONCURRENCY}", ""]
        lines += [_summary(profile) for profile in by_server.values()]
        lines += [
            "",
            "| layer | limit self % | limit ms/RPC | service self % | service ms/RPC "
            "| service - limit ms/RPC | service inclusive % |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for index, name in enumerate(LAYER_NAMES):
            limit_share = _share(limit, index)
            service_share = _share(service, index)
            difference = service_share[1] - limit_share[1]
            inclusive = service.breakdown.layers[index].inclusive_percent if service else 0.0
            lines.append(
                f"| {name} | {limit_share[0]:.1f} | {limit_share[1]:.3f} | "
                f"{service_share[0]:.1f} | {service_share[1]:.3f} | {difference:+.3f} | "
                f"{inclusive:.1f} |"
            )
        if service is not None and limit is not None and service.breakdown.unit == "samples":
            system = service.system_ms_per_rpc, limit.system_ms_per_rpc
            lines.append(
                f"| {KERNEL_ROW} | | {system[1]:.3f} | | {system[0]:.3f} | "
                f"{system[0] - system[1]:+.3f} | |"
            )
        if service is not None and limit is not None:
            total = service.cpu_ms_per_rpc, limit.cpu_ms_per_rpc
            lines.append(
                f"| **all** | 100 | {total[1]:.3f} | 100 | {total[0]:.3f} | "
                f"{total[0] - total[1]:+.3f} | |"
            )
        for profile in (service, limit):
            if profile is None:
                continue
            for title, top in (
                ("most self time", profile.breakdown.top_self),
                (
                    "most inclusive time (the standard library's left out)",
                    profile.breakdown.top_inclusive,
                ),
            ):
                lines += [
                    "",
                    f"The {profile.server}'s functions with the {title}:",
                    "",
                    "| function | self % | inclusive % |",
                    "| --- | ---: | ---: |",
                ]
                lines += [
                    f"| `{share.name}` | {share.self_percent:.1f} | {share.inclusive_percent:.1f} |"
                    for share in top
                ]
    return "\n".join(lines) + "\n"


def _share(profile: Profile | None, index: int) -> tuple[float, float]:
    """A layer's self percentage in ``profile`` and its milliseconds of CPU per RPC."""
    if profile is None:
        return 0.0, 0.0
    percent = profile.breakdown.layers[index].self_percent
    return percent, percent / 100 * profile.layers_share_ms


def _summary(profile: Profile) -> str:
    errors = f", errors {profile.errors}" if profile.errors else ""
    sampled = (
        f"; py-spy saw it hold the GIL {profile.sampled_ms_per_rpc:.3f} ms per RPC"
        if math.isfinite(profile.sampled_ms_per_rpc)
        else ""
    )
    return (
        f"- {profile.server}: {profile.cpu_ms_per_rpc:.3f} ms server CPU per RPC without the "
        f"profiler (user {profile.user_ms_per_rpc:.3f}, system {profile.system_ms_per_rpc:.3f}), "
        f"{profile.profiled_cpu_ms_per_rpc:.3f} under it ({profile.profiler}){sampled}; "
        f"{profile.rpcs} RPCs profiled, {profile.breakdown.samples} {profile.breakdown.unit}"
        f"{errors}"
    )
