"""The scale model's arithmetic: rates times units, the busiest key's share, the monthly cost."""

from __future__ import annotations

import pytest

from tools.capacity import prices
from tools.capacity.consumption import Consumption, Target
from tools.capacity.scale_model import (
    KeySpread,
    TargetLoad,
    Workload,
    key_spreads,
    model,
    monthly_usd,
)


def units(**by_target: tuple[float, float]) -> Consumption:
    result = Consumption()
    for where, (reads, writes) in by_target.items():
        table, _, index = where.partition("__")
        result.read(table, index or None, reads)
        result.write(table, index or None, writes)
    return result


def load_of(workload: Workload, target: Target) -> TargetLoad:
    return next(load for load in model(workload, MEASURED) if load.target == target)


MEASURED = {
    "Authenticate, 1 session": units(
        Users=(1, 4), UserEvents=(0, 2), UserEvents__EventStream=(0, 1)
    ),
    "RefreshSession, 1 session": units(Users=(1, 2)),
    "GetUser, 1 session": units(Users=(1, 0)),
}


def test_units_per_second_are_the_rates_times_the_units_per_call() -> None:
    workload = Workload(users=1000, sign_ins=10, refreshes=100, user_reads=1000, hot_user_rpcs=1)

    loads = {load.target: load for load in model(workload, MEASURED)}

    users = loads["Users", None]
    assert (users.read_units, users.write_units) == (10 + 100 + 1000, 40 + 200)
    assert loads["UserEvents", "EventStream"].write_units == 10


def test_the_event_stream_spreads_a_day_over_its_shards() -> None:
    workload = Workload(sign_ins=2_000, refreshes=0, user_reads=0)

    stream = load_of(workload, ("UserEvents", "EventStream"))

    assert workload.stream_shards == 8  # the writers' default
    assert stream.spread is KeySpread.PER_DAY
    assert stream.partition_keys == "8 per day"
    assert stream.busiest_key_writes == 2_000 / 8
    assert stream.busiest_write_share == 0.25  # a quarter of the 1,000 WCU a key can take


def test_over_one_shard_the_event_stream_puts_a_whole_day_on_one_key() -> None:
    workload = Workload(sign_ins=2_000, refreshes=0, user_reads=0, stream_shards=1)

    stream = load_of(workload, ("UserEvents", "EventStream"))

    assert stream.partition_keys == "one per day"
    assert stream.busiest_key_writes == 2_000
    assert stream.busiest_write_share == 2.0  # twice the 1,000 WCU a key can take


def test_a_users_key_carries_one_users_calls() -> None:
    # 1,110 calls a second in all; the busiest user makes 10 of them, in the same mix.
    workload = Workload(sign_ins=10, refreshes=100, user_reads=1000, hot_user_rpcs=10)

    users = load_of(workload, ("Users", None))

    assert users.spread is KeySpread.PER_USER
    assert users.busiest_key_reads == pytest.approx(1110 * 10 / 1110)
    assert users.busiest_key_writes == pytest.approx(240 * 10 / 1110)
    assert users.busiest_read_share == pytest.approx(10 / 3000)


def test_the_spreads_come_from_the_schemas_hash_keys() -> None:
    spreads = key_spreads()

    assert spreads["UserEvents", "EventStream"] is KeySpread.PER_DAY
    assert {t for t, s in spreads.items() if s is KeySpread.PER_DAY} == {
        ("UserEvents", "EventStream")
    }
    assert spreads["Users", "RefreshTokenIndex"] is KeySpread.PER_USER


def test_a_month_of_one_unit_a_second_at_the_published_prices() -> None:
    # 730 hours of 1 unit a second is 2,628,000 units.
    assert monthly_usd(1, 0) == pytest.approx(2.628 * prices.USD_PER_MILLION_READ_UNITS)
    assert monthly_usd(0, 1) == pytest.approx(2.628 * prices.USD_PER_MILLION_WRITE_UNITS)
    assert (prices.USD_PER_MILLION_READ_UNITS, prices.USD_PER_MILLION_WRITE_UNITS) == (0.125, 0.625)


def test_a_workload_needs_units_for_each_of_its_calls() -> None:
    with pytest.raises(ValueError, match="no measured units for GetUser, 1 session"):
        model(Workload(), {k: v for k, v in MEASURED.items() if not k.startswith("GetUser")})
