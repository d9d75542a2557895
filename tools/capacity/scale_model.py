"""The scale model: a workload's peak rates times the measured units per RPC, as units per second
of each table and index, the busiest partition key's share of its ceiling, and monthly cost.

Ceilings: one partition serves at most 3,000 read units and 1,000 write units a second, and one
partition key value cannot be spread over more ("Partitions and data distribution",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.Partitions.html;
"Designing partition keys to distribute your workload",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-uniform-load.html).
A GSI has partitions of its own with the same ceilings, and when an index throttles, writes to its
table throttle too. ``EventStream``'s hash key is the UTC day and a shard (``<day>`` for shard 0,
``<day>#<k>`` for the others; domain/event_cursors.py): the writers spread a day's events over
``stream_shards`` keys (USER_SERVICE_EVENTS_STREAM_SHARDS, default 8) by the CRC-32 of the user
id, so with many users each key takes about ``1 / stream_shards`` of the day's writes (and
WatchEvents' reads, which Query every shard alike). With one shard, every event of a day goes to
one key (its range key grows with time, so splitting that key by range would not spread the
writes). Every other key here is one user's (or one session's): its busiest key is one user
calling at ``hot_user_rpcs`` a second in the workload's mix.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from domain.event_cursors import STREAM_SHARDS
from persistence.schema import (
    emails_table_definition,
    events_table_definition,
    sessions_table_definition,
    users_table_definition,
)
from tools.capacity import prices
from tools.capacity.consumption import Consumption, Target
from tools.capacity.tables import TableModel

PARTITION_READ_UNITS = 3_000
PARTITION_WRITE_UNITS = 1_000
DAY_KEY_ATTRIBUTES = frozenset({"StreamDay"})  # hash keys holding a day's shards, by user


class KeySpread(enum.Enum):
    """How a table's or index's traffic spreads over its partition keys."""

    PER_USER = "one per user"
    PER_DAY = "the day's shards"  # Workload.stream_shards keys a day


@dataclass(frozen=True)
class Workload:
    """Peak calls per second, and the users stored."""

    users: int = 10_000_000
    sign_ins: float = 2_000.0  # Authenticate
    refreshes: float = 10_000.0  # RefreshSession
    user_reads: float = 50_000.0  # GetUser
    hot_user_rpcs: float = 10.0  # the busiest single user's own calls a second, in this mix
    stream_shards: int = STREAM_SHARDS  # EventStream keys a day (USER_SERVICE_EVENTS_STREAM_SHARDS)

    def rates(self) -> dict[str, float]:
        """Calls per second by the capacity scenario that stands for them (a typical user)."""
        return {
            "Authenticate, 1 session": self.sign_ins,
            "RefreshSession, 1 session": self.refreshes,
            "GetUser, 1 session": self.user_reads,
        }

    @property
    def total_rpcs(self) -> float:
        return sum(self.rates().values())


@dataclass(frozen=True)
class TargetLoad:
    """One table or index under the workload."""

    target: Target
    read_units: float  # per second
    write_units: float
    spread: KeySpread
    busiest_key_reads: float
    busiest_key_writes: float
    keys_per_day: int = 1  # for a PER_DAY spread

    @property
    def partition_keys(self) -> str:
        """How many partition keys carry the load, as the report says it."""
        if self.spread is KeySpread.PER_USER:
            return str(self.spread.value)
        return "one per day" if self.keys_per_day == 1 else f"{self.keys_per_day} per day"

    @property
    def busiest_read_share(self) -> float:
        return self.busiest_key_reads / PARTITION_READ_UNITS

    @property
    def busiest_write_share(self) -> float:
        return self.busiest_key_writes / PARTITION_WRITE_UNITS

    @property
    def monthly_usd(self) -> float:
        return monthly_usd(self.read_units, self.write_units)


def monthly_usd(read_units_per_second: float, write_units_per_second: float) -> float:
    """On-demand cost of these rates sustained for a month, at the published prices."""
    seconds = prices.SECONDS_PER_MONTH
    reads = read_units_per_second * seconds / 1e6 * prices.USD_PER_MILLION_READ_UNITS
    writes = write_units_per_second * seconds / 1e6 * prices.USD_PER_MILLION_WRITE_UNITS
    return reads + writes


def key_spreads() -> dict[Target, KeySpread]:
    """Each table's and index's spread, from its hash key in persistence/schema.py."""
    spreads: dict[Target, KeySpread] = {}
    for definition in (
        users_table_definition("Users"),
        emails_table_definition("UserEmails"),
        events_table_definition("UserEvents"),
        sessions_table_definition("UserSessions"),
    ):
        table = TableModel.from_definition(definition)
        keys: dict[Target, str] = {(table.name, None): table.key[0]}
        keys |= {(table.name, index.name): index.key[0] for index in table.indexes}
        for target, hash_key in keys.items():
            by_day = hash_key in DAY_KEY_ATTRIBUTES
            spreads[target] = KeySpread.PER_DAY if by_day else KeySpread.PER_USER
    return spreads


def model(workload: Workload, units: Mapping[str, Consumption]) -> list[TargetLoad]:
    """Every table and index the workload touches, with its load and busiest key."""
    missing = sorted(set(workload.rates()) - set(units))
    if missing:
        raise ValueError(f"no measured units for {', '.join(missing)}")
    per_second = Consumption()
    for scenario, rate in workload.rates().items():
        per_second.add(units[scenario].scaled(rate))
    spreads = key_spreads()
    hot_user_share = workload.hot_user_rpcs / max(workload.total_rpcs, 1e-9)
    loads = []
    for target in per_second.targets():
        reads, writes = per_second.reads.get(target, 0.0), per_second.writes.get(target, 0.0)
        spread = spreads.get(target, KeySpread.PER_USER)
        per_day = spread is KeySpread.PER_DAY
        share = 1.0 / workload.stream_shards if per_day else hot_user_share
        keys = workload.stream_shards if per_day else 1
        loads.append(TargetLoad(target, reads, writes, spread, reads * share, writes * share, keys))
    return loads
