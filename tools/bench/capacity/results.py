"""What the capacity phase measured: units per RPC per table and index, and the cross-check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tools.capacity.consumption import Consumption


@dataclass
class ScenarioUnits:
    """The mean units one call of a scenario consumed, over ``calls`` calls."""

    name: str  # "RefreshSession, 50 sessions"
    rpc: str  # "RefreshSession"
    sessions: int  # sessions the user held before each call (0: no user involved)
    calls: int
    units: Consumption
    requests: dict[str, int]  # DynamoDB operations per call, e.g. {"GetItem": 1}

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rpc": self.rpc,
            "sessions": self.sessions,
            "calls": self.calls,
            "read_units": self.units.total_reads,
            "write_units": self.units.total_writes,
            "by_target": self.units.as_json(),
            "requests": self.requests,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioUnits:
        units = Consumption.from_json(data["by_target"])
        return cls(
            data["name"], data["rpc"], data["sessions"], data["calls"], units, data["requests"]
        )


@dataclass(frozen=True)
class CrossCheck:
    """One request's units by the calculator beside what moto's ReturnConsumedCapacity said."""

    operation: str
    ours: float
    moto: float | None  # None: moto returned no ConsumedCapacity for it

    def as_json(self) -> dict[str, Any]:
        return {"operation": self.operation, "ours": self.ours, "moto": self.moto}


@dataclass
class CapacityResults:
    """Every scenario's units, the cross-check, and the size of a typical user item."""

    scenarios: list[ScenarioUnits] = field(default_factory=list)
    cross_checks: list[CrossCheck] = field(default_factory=list)
    typical_user_bytes: int = 0

    def scenario(self, name: str) -> ScenarioUnits | None:
        return next((s for s in self.scenarios if s.name == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenarios": [scenario.as_json() for scenario in self.scenarios],
            "cross_checks": [check.as_json() for check in self.cross_checks],
            "typical_user_bytes": self.typical_user_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CapacityResults:
        return cls(
            [ScenarioUnits.from_json(s) for s in data["scenarios"]],
            [CrossCheck(c["operation"], c["ours"], c["moto"]) for c in data["cross_checks"]],
            data.get("typical_user_bytes", 0),
        )
