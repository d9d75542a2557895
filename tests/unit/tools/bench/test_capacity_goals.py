"""The issue's capacity goals judged from a capacity phase's units: met, or the gap."""

from __future__ import annotations

import re
from pathlib import Path

from tools.bench.capacity.results import CapacityResults, ScenarioUnits
from tools.bench.goals import INDEXES_READ_BY_REQUEST_PATHS, capacity_goals
from tools.bench.plan import QUICK
from tools.bench.results import Results
from tools.capacity.consumption import Consumption

ROOT = Path(__file__).resolve().parents[4]


def scenario(name: str, sessions: int, **units: tuple[float, float]) -> ScenarioUnits:
    """``Users=(1, 2)``: 1 read and 2 write units on Users; ``Users__EmailIndex`` an index."""
    consumption = Consumption()
    for where, (reads, writes) in units.items():
        table, _, index = where.partition("__")
        consumption.read(table, index or None, reads)
        consumption.write(table, index or None, writes)
    rpc = name.split(",")[0]
    return ScenarioUnits(name, rpc, sessions, 3, consumption, {})


def goals_of(*scenarios: ScenarioUnits) -> dict[str, tuple[bool | None, str]]:
    results = Results({}, QUICK, capacity=CapacityResults(list(scenarios)))
    return {goal.name: (goal.met, goal.figures) for goal in capacity_goals(results)}


def test_units_within_the_goal_are_met() -> None:
    goals = goals_of(scenario("GetUser, 1 session", 1, Users=(1, 0)))

    assert goals["GetUser units"] == (True, "1 R, 0 W (Users 1 R 0 W)")


def test_units_beyond_the_goal_show_the_gap_and_where_they_went() -> None:
    goals = goals_of(
        scenario("RefreshSession, 1 session", 1, Users=(1, 4), Users__RefreshTokenIndex=(0, 4))
    )

    met, figures = goals["RefreshSession units"]
    assert met is False
    assert figures.endswith("gap: write +6")
    assert "Users/RefreshTokenIndex 0 R 4 W" in figures


def test_units_that_grow_with_sessions_are_not_flat() -> None:
    goals = goals_of(
        scenario("LogoutAll, 1 session", 1, Users=(1, 2)),
        scenario("LogoutAll, 50 sessions", 50, Users=(10, 74)),
        scenario("DisableUser, 1 session", 1, Users=(1, 2)),
        scenario("DisableUser, 50 sessions", 50, Users=(1, 2)),
    )

    assert goals["LogoutAll flat in sessions"][0] is False
    assert "gap: 37.0 x the writes" in goals["LogoutAll flat in sessions"][1]
    assert goals["DisableUser flat in sessions"][0] is True


def test_writes_to_an_index_no_request_path_reads_are_a_gap() -> None:
    wasteful = goals_of(scenario("Authenticate, 1 session", 1, Users__EmailIndex=(0, 2)))
    frugal = goals_of(scenario("Authenticate, 1 session", 1, UserEvents__EventStream=(0, 1)))

    assert wasteful["Unread index writes"][0] is False
    assert "Users/EmailIndex" in wasteful["Unread index writes"][1]
    assert frugal["Unread index writes"] == (True, "none in any scenario")


def test_goals_without_their_scenario_are_not_measured() -> None:
    results = Results({}, QUICK)
    assert {goal.met for goal in capacity_goals(results)} == {None}


def test_the_indexes_counted_as_read_are_the_ones_persistence_queries() -> None:
    # Every Query or Scan on an index names it as "IndexName": <constant> in persistence/.
    queried = set()
    for source in (ROOT / "persistence").glob("*.py"):
        if source.name in ("schema.py", "table_initializer.py"):  # definitions, not queries
            continue
        queried |= set(re.findall(r'"IndexName":\s*(\w+)', source.read_text()))
    assert queried == {"EVENT_STREAM_INDEX"}
    assert {index for _, index in INDEXES_READ_BY_REQUEST_PATHS} == {"EventStream"}
