"""Start-up: ``python -m server serve`` on the embedded default, spawn to SERVING; idle memory."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tools.bench.environment import default_environment
from tools.bench.processes import (
    HOST,
    START_TIMEOUT_SECONDS,
    free_port,
    start_child,
    stop_child,
    wait_until_serving,
)
from tools.bench.results import StartUp

IDLE_SETTLE_SECONDS = 2.0  # after SERVING, before the resident memory is read


async def measure_startup(
    runs: int, logs: Path, settings: Sequence[tuple[str, str]] = ()
) -> StartUp:
    """The service as `make run` starts it (no endpoint: embedded moto), but on a free port."""
    seconds: list[float] = []
    idle_rss: list[int] = []
    for run in range(runs):
        port = free_port()
        environment = default_environment(port, settings)
        args = ["-m", "server", "serve"]
        spawned = time.monotonic()
        child = await start_child(f"startup-{run + 1}", args, environment, logs)
        try:
            await wait_until_serving(f"{HOST}:{port}", child, START_TIMEOUT_SECONDS)
            seconds.append(time.monotonic() - spawned)
            await asyncio.sleep(IDLE_SETTLE_SECONDS)
            idle_rss.append(child.rss_bytes())
        finally:
            await stop_child(child)
        print(
            f"  start-up {run + 1}/{runs}: SERVING after {seconds[-1]:.2f} s, "
            f"idle RSS {idle_rss[-1] / 2**20:.1f} MiB",
            file=sys.stderr,
        )
    return StartUp(seconds, idle_rss)
