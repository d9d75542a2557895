"""The capacity phase of ``make bench``: a service of its own behind the recording proxy, on the
rows' tables, sent each scenario's calls one at a time; their units computed by tools.capacity.

The rows' services talk to moto directly, so the proxy costs their figures nothing; this
service runs only during the phase.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from biome.user.v1.user_service_pb2_grpc import UserServiceStub

from persistence.schema import (
    emails_table_definition,
    events_table_definition,
    sessions_table_definition,
    users_table_definition,
)
from tools.bench.capacity.mail import Outbox
from tools.bench.capacity.recording_proxy import Recorded, RecordingProxy
from tools.bench.capacity.results import CapacityResults, CrossCheck, ScenarioUnits
from tools.bench.capacity.scenarios import Driver, Scenario, scenarios
from tools.bench.environment import Tables, on_moto
from tools.bench.processes import (
    HOST,
    START_TIMEOUT_SECONDS,
    free_port,
    start_child,
    stop_child,
    wait_until_serving,
)
from tools.capacity.consumption import Consumption
from tools.capacity.item_size import item_size
from tools.capacity.operations import consumption
from tools.capacity.tables import TableModel

MANY_SESSIONS = 50  # the heavy user; USER_SERVICE_MAX_SESSIONS_PER_USER's highest
QUICK_MANY_SESSIONS = 5
# Logical names (persistence.schema's defaults), for the report and the scale model.
ROLES = ("Users", "UserEmails", "UserEvents", "UserSessions")


def table_models(tables: Tables) -> dict[str, TableModel]:
    """The calculator's view of the bench's tables, from persistence/schema.py's definitions."""
    definitions = (
        users_table_definition(tables.users),
        emails_table_definition(tables.emails),
        events_table_definition(tables.events),
        sessions_table_definition(tables.sessions),
    )
    return {d["TableName"]: TableModel.from_definition(d) for d in definitions}


async def measure_capacity(
    endpoint: str,
    tables: Tables,
    logs: Path,
    settings: Sequence[tuple[str, str]] = (),
    *,
    quick: bool,
    rpc_timeout: float,
) -> CapacityResults:
    """Every scenario's mean units per call, and the cross-check against moto's figures."""
    models = table_models(tables)
    many = QUICK_MANY_SESSIONS if quick else MANY_SESSIONS
    calls = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="capacity-outbox-") as mail_folder:
        async with RecordingProxy(endpoint, models) as proxy:
            measured = await _measure_scenarios(
                proxy, tables, logs, settings, Path(mail_folder), many, calls, rpc_timeout
            )
    names = dict(zip(models, ROLES, strict=True))
    results = CapacityResults()
    for scenario, per_call in measured.items():
        total, requests = Consumption(), Counter[str]()
        for records in per_call:
            for record in records:
                total.add(consumption(record.exchange, models))
                requests[record.exchange.operation] += 1
        results.scenarios.append(
            ScenarioUnits(
                scenario.name,
                scenario.rpc,
                scenario.sessions,
                len(per_call),
                total.scaled(1 / len(per_call)).renamed(names),
                {op: count // len(per_call) for op, count in requests.items()},
            )
        )
    every = [record for per_call in measured.values() for records in per_call for record in records]
    results.cross_checks = cross_checks(every, models)
    results.typical_user_bytes = _typical_user_bytes(measured, tables.users)
    return results


async def _measure_scenarios(
    proxy: RecordingProxy,
    tables: Tables,
    logs: Path,
    settings: Sequence[tuple[str, str]],
    mail_folder: Path,
    many: int,
    calls: int,
    rpc_timeout: float,
) -> dict[Scenario, list[list[Recorded]]]:
    """Each scenario's calls, sent to a service of its own whose mail lands in ``mail_folder``."""
    port = free_port()
    environment = on_moto(port, proxy.url, tables, settings)
    environment.update(
        USER_SERVICE_MAX_SESSIONS_PER_USER=str(MANY_SESSIONS),
        USER_SERVICE_HEALTH_CHECK_INTERVAL_SECONDS="3600",  # no probe among the calls
        # The scenarios read the verification and email-change mail from this folder.
        USER_SERVICE_NOTIFIER="outbox",
        USER_SERVICE_OUTBOX_DIR=str(mail_folder),
        # A resend or an email change right after registration's mail: no cool-down to wait out
        # (a mail refused by it would cost its lookup and nothing else).
        USER_SERVICE_SECURITY_MAIL_COOLDOWN_SECONDS="0",
    )
    child = await start_child("capacity-service", ["-m", "server", "serve"], environment, logs)
    try:
        target = f"{HOST}:{port}"
        await wait_until_serving(target, child, START_TIMEOUT_SECONDS)
        async with grpc.aio.insecure_channel(target) as channel:
            driver = Driver(UserServiceStub(channel), proxy, Outbox(mail_folder), rpc_timeout)
            return {s: await driver.run(s, calls) for s in scenarios(many)}
    finally:
        await stop_child(child)


def cross_checks(records: list[Recorded], models: dict[str, TableModel]) -> list[CrossCheck]:
    """One request per operation: the calculator's total beside the backend's reported total."""
    first: dict[str, Recorded] = {}
    for record in records:
        if record.exchange.error_code is None:
            first.setdefault(record.exchange.operation, record)
    checks = []
    for operation, record in sorted(first.items()):
        ours = consumption(record.exchange, models)
        checks.append(
            CrossCheck(
                operation, ours.total_reads + ours.total_writes, _reported_total(record.reported)
            )
        )
    return checks


def _reported_total(reported: Any) -> float | None:
    if not reported:  # moto answers TransactWriteItems with an empty list
        return None
    entries: list[dict[str, Any]] = reported if isinstance(reported, list) else [reported]
    return float(sum(entry.get("CapacityUnits", 0.0) for entry in entries))


def _typical_user_bytes(measured: dict[Scenario, list[list[Recorded]]], users: str) -> int:
    """The size of the one-session user that GetUser read."""
    for scenario, per_call in measured.items():
        if scenario.rpc == "GetUser":
            for record in per_call[0]:
                if record.exchange.request.get("TableName") == users:
                    return item_size(record.exchange.reply.get("Item"))
    return 0
