"""``make capacity``: the scale model for a stated workload, from the units per RPC that the last
``make bench`` measured (bench-results/results.json), or measured now by the bench's capacity
phase on its own (moto, 200 seeded users; a minute or two)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from domain.event_cursors import STREAM_SHARDS
from tools.capacity.consumption import Consumption
from tools.capacity.scale_model import Workload, model
from tools.capacity.scale_report import scale_table

PROG = "python -m tools.capacity"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench-results" / "results.json"
MEASURED = ROOT / "bench-results" / "capacity.json"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    defaults = Workload()
    workload = Workload(
        users=args.users or defaults.users,
        sign_ins=_or(args.sign_ins, defaults.sign_ins),
        refreshes=_or(args.refreshes, defaults.refreshes),
        user_reads=_or(args.user_reads, defaults.user_reads),
        hot_user_rpcs=_or(args.hot_user_rpcs, defaults.hot_user_rpcs),
        stream_shards=args.stream_shards or defaults.stream_shards,
    )
    capacity, source = _units(args)
    units = {s["name"]: Consumption.from_json(s["by_target"]) for s in capacity["scenarios"]}
    try:
        loads = model(workload, units)
    except ValueError as error:
        print(f"{PROG}: {error} (in {source})", file=sys.stderr)
        return 1
    print(scale_table(workload, loads, source), end="")
    return 0


def _units(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The capacity phase's results and a line saying where they come from."""
    if not args.measure:
        for path in (args.results, MEASURED):
            document = json.loads(path.read_text()) if path.exists() else {}
            capacity = document.get("capacity") if "scenarios" not in document else document
            if capacity:
                when = document.get("machine", {}).get("date") or document.get("date", "?")
                return capacity, f"measured by the calculator in `{_shown(path)}` ({when})"
    from datetime import UTC, datetime

    from tools.bench.capacity.standalone import measure_alone  # starts moto: only when needed

    print(
        f"{PROG}: measuring units per RPC (moto, a service, a recording proxy) ...", file=sys.stderr
    )
    results = asyncio.run(measure_alone(MEASURED.parent / "logs", quick=False))
    document = {**results.as_json(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    MEASURED.parent.mkdir(parents=True, exist_ok=True)
    MEASURED.write_text(json.dumps(document, indent=2) + "\n")
    return document, f"measured by the calculator just now, kept in `{_shown(MEASURED)}`"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> float:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError("must not be negative")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    defaults = Workload()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Units per second of each DynamoDB table and index, the busiest partition "
        "key's share of its 1,000 WCU / 3,000 RCU ceiling, and the monthly on-demand cost, for a "
        "peak workload; printed as Markdown (the README's table).",
    )
    parser.add_argument(
        "--users", type=_positive(int), help=f"users stored (default {defaults.users:,})"
    )
    parser.add_argument(
        "--sign-ins",
        type=_positive(float),
        help=f"Authenticate calls a second (default {defaults.sign_ins:,.0f})",
    )
    parser.add_argument(
        "--refreshes",
        type=_positive(float),
        help=f"RefreshSession calls a second (default {defaults.refreshes:,.0f})",
    )
    parser.add_argument(
        "--user-reads",
        type=_positive(float),
        help=f"GetUser calls a second (default {defaults.user_reads:,.0f})",
    )
    parser.add_argument(
        "--hot-user-rpcs",
        type=_positive(float),
        help=f"the busiest user's own calls a second (default {defaults.hot_user_rpcs:g})",
    )
    parser.add_argument(
        "--stream-shards",
        type=int,
        choices=range(1, STREAM_SHARDS + 1),
        metavar=f"1..{STREAM_SHARDS}",
        help="EventStream keys a day, as USER_SERVICE_EVENTS_STREAM_SHARDS sets "
        f"(default {defaults.stream_shards})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="bench results to take the units per RPC from (default "
        "bench-results/results.json, then bench-results/capacity.json)",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="measure the units per RPC now instead (moto and a service on loopback "
        "ports; a minute or two)",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
