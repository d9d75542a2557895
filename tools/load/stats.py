"""What happened to every RPC: status codes per method, expected or not, and latencies."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import grpc

MAX_SAMPLES = 20


class Stats:
    """Counts and latencies of the RPCs sent, each judged expected or unexpected by the workload."""

    def __init__(self) -> None:
        self.codes: dict[str, Counter[str]] = defaultdict(Counter)
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.expected_non_ok: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.samples: list[str] = []

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.codes.values())

    @property
    def unexpected_count(self) -> int:
        return sum(self.unexpected.values())

    def record(
        self,
        method: str,
        code: grpc.StatusCode,
        seconds: float,
        *,
        expected: bool,
        note: str = "",
    ) -> None:
        """One RPC's outcome; ``note`` says what was wrong with an unexpected one."""
        self.codes[method][code.name] += 1
        self.latencies[method].append(seconds)
        if not expected:
            self.unexpected[f"{method} {code.name}"] += 1
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(f"{method} {code.name}: {note}" if note else method)
        elif code is not grpc.StatusCode.OK:
            self.expected_non_ok[f"{method} {code.name}"] += 1

    def percentile_ms(self, method: str, percent: float) -> float:
        """The nearest-rank percentile of ``method``'s latencies, in milliseconds."""
        values = sorted(self.latencies[method])
        if not values:
            return 0.0
        rank = max(1, math.ceil(percent / 100 * len(values)))
        return values[rank - 1] * 1000
