"""Moments become protobuf Timestamps exactly as Timestamp.FromDatetime would make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from server.pb_mapping import _timestamp

MOMENTS = [
    datetime(2026, 12, 6, 22, 50, 1, 123456, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the epoch: nanos >= 0
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # not UTC
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(2026, 3, 29, 1, 30, 0, 7),  # naive: taken as UTC
]


def _from_datetime(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_a_moment_maps_as_from_datetime_would(moment: datetime) -> None:
    assert _timestamp(moment) == _from_datetime(moment)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.one_of(st.none(), st.just(UTC), st.timezones()),
    )
)
def test_any_moment_maps_as_from_datetime_would(moment: datetime) -> None:
    assert _timestamp(moment) == _from_datetime(moment)
