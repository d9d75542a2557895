"""One run's results as results.json, results.md and, if matplotlib imports, latency.png."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tools.bench.capacity.report import capacity_section
from tools.bench.embedded_scale import embedded_scale_section
from tools.bench.goals import MB, Goal
from tools.bench.measure import Row
from tools.bench.plan import CONCURRENCIES
from tools.bench.results import Results

ROW_LABELS = {
    "floor": "floor: 1 GetItem",
    "floor (guard + user)": "floor: 2 GetItem (guard, user)",
}


def write(results: Results, goals: list[Goal], out: Path) -> list[Path]:
    """Writes the files into ``out`` (made if missing, and kept out of git); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():  # as pytest and ruff do with their caches
        ignore.write_text("# Written by `make bench`: results are not committed.\n*\n")
    written = [out / "results.json", out / "results.md"]
    document = {**results.as_json(), "goals": [goal.as_json() for goal in goals]}
    written[0].write_text(json.dumps(document, indent=2) + "\n")
    written[1].write_text(markdown(results, goals))
    plot = _plot(results, out / "latency.png")
    return written + ([plot] if plot is not None else [])


def markdown(results: Results, goals: list[Goal]) -> str:
    machine, plan = results.machine, results.plan
    lines = [
        "# user-service benchmark" + (" (--quick: too small to judge by)" if plan.quick else ""),
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores; {machine['platform']}",
        f"- Python: {machine['python']}"
        + (" (PYTHONDONTWRITEBYTECODE set)" if machine["python_dont_write_bytecode"] else ""),
        f"- Load average (1, 5, 15 min): {_load(machine['load_average_at_start'])} at the start, "
        f"{_load(results.load_average_at_end)} at the end",
        f"- Users: {plan.base_users:,} seeded before the rows; scale points "
        f"{' and '.join(f'{point.users:,}' for point in results.scale) or 'none'}",
        f"- Service settings beyond its defaults: {_settings(plan.service_settings)}",
        f"- Total run time: {results.total_seconds:.0f} s",
        "",
        "## RPCs side by side",
        "",
        "Closed-loop clients (each sends its next RPC when the last one ends). The rows of one "
        f"concurrency are measured in turns ({plan.rounds} rounds), so the drift of a shared "
        "machine falls on all alike. Server CPU is the server process's own utime + stime over "
        "the row, per RPC (moto's cost excluded; it has its own column); x floor divides it by "
        "the one-GetItem floor's at the same concurrency.",
        "",
        "| Row | Concurrency | RPCs | Errors | RPC/s | p50 ms | p99 ms "
        "| Server CPU ms/RPC | x floor | moto CPU ms/RPC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [_row_line(row) for row in results.rows]
    lines += _standin_section(results)
    lines += _scale_section(results)
    lines += _loop_section(results)
    lines += _memory_section(results)
    lines += _seeding_section(results)
    lines += embedded_scale_section(results.embedded_scale)
    lines += capacity_section(results.capacity)
    lines += [
        "",
        "## Goals",
        "",
        "| Goal | Target | Verdict | Figures |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {g.name} | {g.target} | **{g.verdict}** | {g.figures} |" for g in goals]
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results.phase_seconds.items())
    total = f"total {results.total_seconds:.0f} s"
    lines += ["", "## Where the time went", "", f"{phases}; {total}", ""]
    return "\n".join(lines)


def _row_line(row: Row) -> str:
    errors = sum(row.errors.values())
    return (
        f"| {ROW_LABELS.get(row.name, row.name)} | {row.concurrency} | {row.rpcs:,} | {errors} "
        f"| {row.throughput:.0f} | {_ms(row.p50_ms)} | {_ms(row.p99_ms)} "
        f"| {row.server_cpu_ms_per_rpc:.3f} | {row.ratio_to_floor:.2f} "
        f"| {row.backend_cpu_ms_per_rpc:.3f} |"
    )


def _standin_section(results: Results) -> list[str]:
    if not results.standin_rows:
        return []
    lines = [
        "",
        "## CPU per RPC on the keep-alive stand-in",
        "",
        "The same closed loops against a DynamoDB stand-in (`tools/bench/standin.py`: HTTP/1.1 "
        "keep-alive on loopback, replies built by the service's mappers), so client CPU is "
        "measured without moto's cost or a TCP connection per call. The limit "
        "(`tools/bench/limit.py`) is a bare grpc.aio handler plus the minimal requests the RPC "
        "must make, signed by botocore's SigV4Auth on one aiohttp keep-alive session and mapped "
        "straight to the reply. x limit divides a row's server CPU per RPC by its RPC's limit "
        "row; x floor by the aiobotocore floor doing the same reads (GetUserByEmail: guard + "
        "user; RefreshSession: the one-GetItem floor, one of its two reads).",
        "",
        "| Row | Concurrency | RPCs | Errors | RPC/s | p50 ms | p99 ms "
        "| Server CPU ms/RPC | x limit | x floor | stand-in CPU ms/RPC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results.standin_rows:
        errors = sum(row.errors.values())
        lines.append(
            f"| {row.name} | {row.concurrency} | {row.rpcs:,} | {errors} "
            f"| {row.throughput:.0f} | {_ms(row.p50_ms)} | {_ms(row.p99_ms)} "
            f"| {row.server_cpu_ms_per_rpc:.3f} | {_ratio(row.ratio_to_limit)} "
            f"| {_ratio(row.ratio_to_floor)} | {row.backend_cpu_ms_per_rpc:.3f} |"
        )
    return lines


def _ratio(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def _scale_section(results: Results) -> list[str]:
    if len(results.scale) < 2:
        return []
    small, large = results.scale[0], results.scale[-1]
    lines = [
        "",
        "## Scale",
        "",
        "Two instances of the service on one moto, one on the rows' tables, one on tables of "
        f"their own filled to {large.users:,} users, measured in turns ({results.plan.rounds} "
        f"rounds) at concurrency 1: {results.plan.scale_rpcs} GetUser and GetUserByEmail, "
        f"{results.plan.scale_page_rpcs} ListUsers each (or fewer, if a row reached "
        f"{results.plan.row_seconds:.0f} s). ListUsers pages of 50 start after a random stored "
        "user.",
        "",
        f"| RPC | p50 ms at {small.users:,} | p50 ms at {large.users:,} | ratio "
        "| server CPU ms/RPC (small, large) | moto CPU ms/RPC (small, large) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, before in small.rows.items():
        after = large.rows[name]
        ratio = after.p50_ms / before.p50_ms if before.p50_ms > 0 else math.nan
        lines.append(
            f"| {name} | {_ms(before.p50_ms)} | {_ms(after.p50_ms)} | {ratio:.2f} "
            f"| {before.server_cpu_ms_per_rpc:.3f}, {after.server_cpu_ms_per_rpc:.3f} "
            f"| {before.backend_cpu_ms_per_rpc:.3f}, {after.backend_cpu_ms_per_rpc:.3f} |"
        )
    return lines


def _loop_section(results: Results) -> list[str]:
    loop = results.loop
    if loop is None:
        return []
    seconds_under = sum(row.seconds for row in loop.under_sign_ins.values())
    lines = [
        "",
        "## Event loop under password hashing",
        "",
        f"On the keep-alive {loop.backend}, each probe at concurrency 1, alone and then while "
        f"{loop.sign_in_workers} Authenticate calls run in a loop on another channel "
        f"({loop.sign_ins_during_probes} completed during the probes, "
        f"{loop.sign_ins_during_probes / max(seconds_under, 1e-9):.0f} a second; "
        f"{loop.hash_workers} hashing threads in the service). "
        "GetJwks reads no DynamoDB: only the service's event loop or a starved CPU slows it. The "
        "floor hashes no passwords: only the shared backend or a starved CPU slows it. Server "
        "and backend CPU under sign-ins include the sign-ins' own. The benchmark's own CPU "
        f"(probes and sign-ins): {loop.client_cpu_seconds_alone:.2f} s alone, "
        f"{loop.client_cpu_seconds_under:.2f} s under sign-ins. The service's CPU per sign-in: "
        f"{loop.loop_ms_per_sign_in:.1f} ms on its event loop's thread (its CPU there under "
        "sign-ins less the probes' own, measured alone), "
        f"{loop.other_threads_ms_per_sign_in:.1f} ms on its other threads (password hashing).",
        "",
        "| Probe | RPCs alone | p50 ms alone | p99 ms alone | p50 ms under sign-ins "
        "| p99 ms under sign-ins | p99 ratio | Server CPU ms/RPC alone | backend CPU ms/RPC "
        "alone, under |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, alone in loop.alone.items():
        under = loop.under_sign_ins[name]
        ratio = under.p99_ms / alone.p99_ms if alone.p99_ms > 0 else math.nan
        lines.append(
            f"| {name} | {alone.rpcs:,} | {_ms(alone.p50_ms)} | {_ms(alone.p99_ms)} "
            f"| {_ms(under.p50_ms)} | {_ms(under.p99_ms)} | {ratio:.2f} "
            f"| {alone.server_cpu_ms_per_rpc:.3f} "
            f"| {alone.backend_cpu_ms_per_rpc:.3f}, {under.backend_cpu_ms_per_rpc:.3f} |"
        )
    return lines


def _memory_section(results: Results) -> list[str]:
    lines = ["", "## Start-up and memory", ""]
    startup, run = results.startup, results.long_run
    if startup is not None and startup.seconds:
        runs = ", ".join(f"{seconds:.2f}" for seconds in startup.seconds)
        rss = ", ".join(f"{value / MB:.1f}" for value in startup.idle_rss_bytes)
        lines += [
            f"- `python -m server serve` on the embedded default, spawn to health SERVING: "
            f"{runs} s; resident memory 2 s later: {rss} MB (moto runs in-process there)",
        ]
    if run is not None:
        lines += [
            f"- Long run, {run.row.rpcs:,} GetUser at concurrency {run.row.concurrency} in "
            f"{run.row.seconds:.0f} s ({run.row.throughput:.0f}/s, p99 {_ms(run.row.p99_ms)} ms): "
            f"service RSS {run.rss_after_first_tenth / MB:.1f} MB after 10%, "
            f"{run.rss_at_end / MB:.1f} MB at the end, peak {run.rss_peak / MB:.1f} MB",
        ]
    return lines


def _seeding_section(results: Results) -> list[str]:
    seeding = results.seeding
    if not seeding.users:
        return []
    parts = ", ".join(
        f"{users:,} users in {seconds:.1f} s ({users / max(seconds, 1e-9):.0f}/s)"
        for users, seconds in zip(seeding.users, seeding.seconds, strict=True)
    )
    return [
        "",
        "## Seeding",
        "",
        f"BatchWriteItem of 25 items, {results.plan.seed_in_flight} in flight: {parts}; "
        f"{seeding.batch_requests:,} requests, {seeding.unprocessed_retries} retries of "
        "unprocessed items.",
    ]


def _plot(results: Results, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(9, 6))
    for name in dict.fromkeys(row.name for row in results.rows):
        rows = [results.row(name, concurrency) for concurrency in CONCURRENCIES]
        points = [row for row in rows if row is not None]
        x = [row.concurrency for row in points]
        (line,) = axes.plot(x, [r.p50_ms for r in points], "o-", label=ROW_LABELS.get(name, name))
        axes.plot(x, [r.p99_ms for r in points], "x--", color=line.get_color(), alpha=0.6)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(list(CONCURRENCIES), [str(c) for c in CONCURRENCIES])
    axes.set_xlabel("concurrency (closed-loop clients)")
    axes.set_ylabel("latency (ms): p50 solid, p99 dashed")
    axes.set_title(f"user-service vs floor, {results.machine['date']}")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _ms(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def _settings(settings: tuple[tuple[str, str], ...]) -> str:
    chosen = ", ".join(f"`{name}={value}`" for name, value in settings)
    return "development profile, log level WARNING" + (f", {chosen}" if chosen else "")


def _load(values: list[float]) -> str:
    return " ".join(f"{value:.2f}" for value in values) or "?"
