"""Units consumed, per table and per index: what one request, one RPC or one workload costs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# (table, index): the index is None for the table itself.
Target = tuple[str, str | None]


@dataclass
class Consumption:
    """Read and write units by target."""

    reads: dict[Target, float] = field(default_factory=lambda: defaultdict(float))
    writes: dict[Target, float] = field(default_factory=lambda: defaultdict(float))

    def read(self, table: str, index: str | None, units: float) -> None:
        self.reads[table, index] += units

    def write(self, table: str, index: str | None, units: float) -> None:
        self.writes[table, index] += units

    def add(self, other: Consumption) -> None:
        for target, units in other.reads.items():
            self.reads[target] += units
        for target, units in other.writes.items():
            self.writes[target] += units

    def scaled(self, factor: float) -> Consumption:
        result = Consumption()
        for target, units in self.reads.items():
            result.reads[target] += units * factor
        for target, units in self.writes.items():
            result.writes[target] += units * factor
        return result

    def renamed(self, names: dict[str, str]) -> Consumption:
        """The same units with table names replaced (a bench table's name by its role)."""
        result = Consumption()
        for target, units in self.reads.items():
            result.reads[names.get(target[0], target[0]), target[1]] += units
        for target, units in self.writes.items():
            result.writes[names.get(target[0], target[0]), target[1]] += units
        return result

    @property
    def total_reads(self) -> float:
        return sum(self.reads.values())

    @property
    def total_writes(self) -> float:
        return sum(self.writes.values())

    def index_writes(self) -> dict[Target, float]:
        return {target: units for target, units in self.writes.items() if target[1] is not None}

    def targets(self) -> list[Target]:
        return sorted({*self.reads, *self.writes}, key=lambda t: (t[0], t[1] or ""))

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {
                "table": table,
                "index": index,
                "read_units": self.reads.get((table, index), 0.0),
                "write_units": self.writes.get((table, index), 0.0),
            }
            for table, index in self.targets()
        ]

    @classmethod
    def from_json(cls, rows: Iterable[dict[str, Any]]) -> Consumption:
        result = cls()
        for row in rows:
            result.read(row["table"], row["index"], float(row["read_units"]))
            result.write(row["table"], row["index"], float(row["write_units"]))
        return result


def target_name(target: Target) -> str:
    table, index = target
    return table if index is None else f"{table}/{index}"
