"""The end of a run: the table of RPCs by method and status, latencies, verdict, JSON summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tools.load.mix import METHODS
from tools.load.stats import Stats
from tools.load.verify import Verification

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class Summary:
    """Everything a run found out."""

    target: str
    spawned: bool
    seconds: float
    stopped_by: str
    stats: Stats
    registered: int
    verification: Verification
    server_exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return (
            self.stats.unexpected_count == 0
            and self.verification.failed_users == 0
            and self.server_exit_code in (None, 0)
        )

    def as_json(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "target": self.target,
            "spawned": self.spawned,
            "seconds": round(self.seconds, 3),
            "stopped_by": self.stopped_by,
            "rpcs": stats.total,
            "methods": {
                method: {
                    "codes": dict(stats.codes[method]),
                    **{f"p{p}_ms": round(stats.percentile_ms(method, p), 3) for p in PERCENTILES},
                }
                for method in _methods(stats)
            },
            "expected_non_ok": dict(stats.expected_non_ok),
            "unexpected": stats.unexpected_count,
            "unexpected_by_status": dict(stats.unexpected),
            "unexpected_samples": list(stats.samples),
            "registered_users": self.registered,
            "verified_users": self.verification.users - self.verification.failed_users,
            "lost_users": self.verification.failed_users,
            "verification_problems": list(self.verification.problems),
            "server_exit_code": self.server_exit_code,
            "passed": self.passed,
        }


def render(summary: Summary) -> str:
    """The table and the verdict, as printed at the end of a run."""
    stats = summary.stats
    verification = summary.verification
    lines = [
        f"{stats.total} RPCs against {summary.target} in {summary.seconds:.1f} s "
        f"({stats.total / max(summary.seconds, 1e-9):.0f}/s), stopped by {summary.stopped_by}",
        "",
        *render_table(stats),
        "",
        f"expected statuses other than OK: {sum(stats.expected_non_ok.values())}"
        + _breakdown(stats.expected_non_ok),
        f"unexpected statuses: {stats.unexpected_count}" + _breakdown(stats.unexpected),
        *(f"  {sample}" for sample in stats.samples),
        f"verification: {verification.users} registered users, each read by id and by email: "
        f"{verification.failed_users} lost or mismatched",
        *(f"  {problem}" for problem in verification.problems),
    ]
    if summary.server_exit_code is not None:
        lines.append(f"spawned instance exited with code {summary.server_exit_code}")
    lines.append("PASS" if summary.passed else "FAIL")
    return "\n".join(lines)


def render_table(stats: Stats) -> list[str]:
    """One row per method: a column per status code seen, then latency percentiles in ms."""
    methods = _methods(stats)
    codes = sorted(
        {code for method in methods for code in stats.codes[method]},
        key=lambda code: (code != "OK", code),
    )
    header = ["method", *codes, "total", *(f"p{p} ms" for p in PERCENTILES)]
    rows = [
        [
            method,
            *(str(stats.codes[method].get(code, 0)) for code in codes),
            str(sum(stats.codes[method].values())),
            *(f"{stats.percentile_ms(method, p):.1f}" for p in PERCENTILES),
        ]
        for method in methods
    ]
    totals = ["all", *(str(sum(stats.codes[m].get(c, 0) for m in methods)) for c in codes)]
    rows.append([*totals, str(stats.total), *("" for _ in PERCENTILES)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    return [line(header), *(line(row) for row in rows)]


def _methods(stats: Stats) -> list[str]:
    return [method for method in METHODS if stats.codes.get(method)]


def _breakdown(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) + ")"
