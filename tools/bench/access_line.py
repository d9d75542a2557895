"""``python -m tools.bench.access_line``: the CPU one RPC's request id, access line and metrics
cost (``_Observation.begin`` then ``end``), logging configured as the service does it.

The context is a stand-in answering what gRPC's would (metadata, peer, code, trailer), so the
figure is the interceptor's own work and the logging it does, without gRPC's Cython calls. The
line is written to a file (flushed per line, as on standard output); each run prints the median
of its rounds in microseconds per call. Compare two versions by alternating runs of each under
``flock /tmp/bench.lock`` (see the README's Performance section).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from typing import Any

import grpc

from server.interceptors.observed_calls import _Observation
from server.operations.logging_config import LogFormat, configure_logging
from server.operations.metrics import Metrics
from server.rpc_access import method_path

METHOD = method_path("GetUser")


class _Context:
    """What the interceptor asks of a grpc.aio.ServicerContext."""

    def __init__(self, request_id: str | None) -> None:
        self._metadata = (("user-agent", "grpc-python/1.0"),) + (
            (("x-request-id", request_id),) if request_id else ()
        )

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:58378"

    def code(self) -> None:
        return None

    def time_remaining(self) -> float:
        return 5.0


def measure(log_format: LogFormat, calls: int, rounds: int, request_id: str | None) -> list[float]:
    """Microseconds per begin+end, one figure per round."""
    with tempfile.TemporaryFile("w") as stream:
        handler = configure_logging("INFO", log_format=log_format, stream=stream)
        try:
            observation = _Observation(METHOD, logging.INFO, Metrics().for_method(METHOD))
            context: Any = _Context(request_id)
            figures = []
            for _ in range(rounds + 1):  # the first round warms up
                started = time.process_time()
                for _ in range(calls):
                    token, peer, begun = observation.begin(context)
                    observation.end(context, grpc.StatusCode.OK, peer, begun, token)
                figures.append((time.process_time() - started) / calls * 1e6)
            return figures[1:]
        finally:
            logging.getLogger().removeHandler(handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("json", "text"), default="json")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--request-id", default="4bf92f3577b34da6", help="'' for none")
    arguments = parser.parse_args()
    figures = measure(arguments.format, arguments.calls, arguments.rounds, arguments.request_id)
    print(
        f"{arguments.format}: {statistics.median(figures):.2f} us per call (median of "
        f"{len(figures)} rounds of {arguments.calls}; {min(figures):.2f} .. {max(figures):.2f})"
    )


if __name__ == "__main__":
    main()
