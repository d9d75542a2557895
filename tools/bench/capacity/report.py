"""The capacity section of results.md: units per RPC by table and index, and the cross-check."""

from __future__ import annotations

from tools.bench.capacity.results import CapacityResults, CrossCheck
from tools.capacity.consumption import Target, target_name
from tools.capacity.scale_model import Workload, model
from tools.capacity.scale_report import scale_table

# What moto 5.2's dynamodb/responses.py reports, read from its source: fixed figures per request.
MOTO_NOTE = (
    "moto reports a fixed figure per request (GetItem 0.5, PutItem, DeleteItem, Query and Scan "
    "1.0, BatchGetItem 1 per key, BatchWriteItem 1.0 per table), whatever the item sizes, the "
    "consistency or the indexes, and nothing for TransactWriteItems"
)


def capacity_section(capacity: CapacityResults | None) -> list[str]:
    if capacity is None:
        return []
    targets = _targets(capacity)
    header = " | ".join(f"{target_name(t)} R / W" for t in targets)
    lines = [
        "",
        "## Capacity units per RPC",
        "",
        "Each scenario's calls were sent one at a time to a service of its own behind a "
        "recording proxy; the units are computed from each DynamoDB request, its reply and the "
        "items before and after each write, by AWS's documented rules (tools/capacity), and "
        f"are the mean per call. A typical user (one session) is {capacity.typical_user_bytes:,} "
        "bytes.",
        "",
        f"| Scenario | calls | DynamoDB requests per call | read units | write units | {header} |",
        "| --- | ---: | --- | ---: | ---: | " + " | ".join("---:" for _ in targets) + " |",
    ]
    for scenario in capacity.scenarios:
        units = scenario.units
        requests = ", ".join(f"{count} {op}" for op, count in sorted(scenario.requests.items()))
        cells = " | ".join(
            f"{units.reads.get(t, 0.0):.4g} / {units.writes.get(t, 0.0):.4g}" for t in targets
        )
        lines.append(
            f"| {scenario.name} | {scenario.calls} | {requests} | {units.total_reads:.4g} "
            f"| {units.total_writes:.4g} | {cells} |"
        )
    lines += [
        "",
        "Cross-check against moto's `ReturnConsumedCapacity` (the first successful request of "
        f"each operation): {MOTO_NOTE}.",
        "",
        "| Operation | calculator | moto | |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [_check_line(check) for check in capacity.cross_checks]
    return lines + _scale_model(capacity)


def _scale_model(capacity: CapacityResults) -> list[str]:
    """The scale model (as `make capacity` prints it) of this run's units, default workload."""
    units = {scenario.name: scenario.units for scenario in capacity.scenarios}
    workload = Workload()
    try:
        loads = model(workload, units)
    except ValueError as error:  # a scenario the model needs was not measured (a quick run)
        return ["", "## Scale model", "", f"Not computed: {error}."]
    table = scale_table(workload, loads, "measured by this run's capacity phase")
    return ["", "## Scale model", "", *table.rstrip("\n").splitlines()]


def _check_line(check: CrossCheck) -> str:
    if check.moto is None:
        return f"| {check.operation} | {check.ours:.4g} | - | moto returns none |"
    verdict = "same" if check.moto == check.ours else "differs"
    return f"| {check.operation} | {check.ours:.4g} | {check.moto:.4g} | {verdict} |"


def _targets(capacity: CapacityResults) -> list[Target]:
    every = {t for scenario in capacity.scenarios for t in scenario.units.targets()}
    return sorted(every, key=lambda t: (t[0], t[1] or ""))
