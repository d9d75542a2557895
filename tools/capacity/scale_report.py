"""The scale model as a Markdown table, with the workload, the prices and where the units came
from."""

from __future__ import annotations

from tools.capacity import prices
from tools.capacity.consumption import target_name
from tools.capacity.scale_model import (
    PARTITION_READ_UNITS,
    PARTITION_WRITE_UNITS,
    TargetLoad,
    Workload,
    monthly_usd,
)


def scale_table(workload: Workload, loads: list[TargetLoad], source: str) -> str:
    lines = [
        f"Workload at peak: {workload.users:,} users; {workload.sign_ins:,.0f} sign-ins "
        f"(Authenticate), {workload.refreshes:,.0f} refreshes (RefreshSession) and "
        f"{workload.user_reads:,.0f} user reads (GetUser) a second, each on a typical user "
        f"(one session); the busiest user makes {workload.hot_user_rpcs:g} of these calls a "
        f"second; `EventStream` spreads each day over {workload.stream_shards} key(s) "
        "(USER_SERVICE_EVENTS_STREAM_SHARDS). "
        f"Units per call: {source}.",
        "",
        f"| Table / index | read units/s | write units/s | partition keys "
        f"| busiest key: reads / {PARTITION_READ_UNITS:,} | writes / {PARTITION_WRITE_UNITS:,} "
        "| on-demand $/month |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for load in loads:
        lines.append(
            f"| {target_name(load.target)} | {load.read_units:,.0f} | {load.write_units:,.0f} "
            f"| {load.partition_keys} | {_share(load.busiest_read_share)} "
            f"| {_share(load.busiest_write_share)} | {load.monthly_usd:,.0f} |"
        )
    reads = sum(load.read_units for load in loads)
    writes = sum(load.write_units for load in loads)
    lines.append(
        f"| **all** | {reads:,.0f} | {writes:,.0f} | | | | {monthly_usd(reads, writes):,.0f} |"
    )
    over = [load for load in loads if max(load.busiest_read_share, load.busiest_write_share) > 1]
    lines += [
        "",
        f"Prices: {prices.describe()}. Monthly cost is these peak rates sustained for the whole "
        "month (an upper bound; storage, backups and streams not included).",
    ]
    if over:
        names = ", ".join(
            f"{target_name(load.target)} ({_worst(load):.0%} of its key's ceiling)" for load in over
        )
        lines.append(f"Over a partition key's ceiling, so throttled at this workload: {names}.")
    return "\n".join(lines) + "\n"


def _worst(load: TargetLoad) -> float:
    return max(load.busiest_read_share, load.busiest_write_share)


def _share(share: float) -> str:
    return f"{share:.2%}" if share < 0.01 else f"{share:.0%}"
