"""The service (``python -m server serve``) or its limit, with cProfile inside, run by signals.

SIGUSR1 starts profiling the event loop's thread (where every RPC's Python code runs), timed by
that thread's CPU clock; SIGUSR2 stops it, writes the statistics to ``--output`` (atomically: a
reader never sees half a file) and clears them for the next window. Start-up, warm-up and
shutdown are never profiled.

``python -m tools.bench.profiled_service --output FILE [--limit]`` with the service's
USER_SERVICE_* environment; ``--limit`` runs the limit (``tools.bench.limit``) instead. Bench
code only: ``tools.bench.profiling`` uses it when py-spy is not installed.
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from server.cli import main as service_main
from tools.bench.limit import main as limit_main


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.profiled_service")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--limit", action="store_true", help="the limit, not the service")
    args = parser.parse_args()
    output: Path = args.output
    # The thread's own CPU time, not the wall clock: time the loop waits in epoll is no cost.
    profiler = cProfile.Profile(time.thread_time)

    # Signal handlers run in the main thread, which is the one running the event loop.
    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        written = output.with_name(output.name + ".part")
        profiler.dump_stats(written)
        written.replace(output)
        profiler.clear()

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    if args.limit:
        limit_main()
        return 0
    return service_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
