"""The stream's keys: a user's shard, a shard's partition key, and their limits."""

from __future__ import annotations

import uuid
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain.event_cursors import (
    STREAM_SHARDS,
    stream_partition,
    stream_partition_of,
    stream_shard,
)

DAY = date(2026, 12, 6)


def test_a_users_shard_is_the_crc32_of_its_id_modulo_the_shards() -> None:
    user = "0b7e7f55-9f3c-4d7a-9d38-1c2b3a4d5e6f"

    assert stream_shard(user, 8) == zlib.crc32(user.encode()) % 8 == 7
    assert stream_shard(user, 1) == 0


def test_one_shard_is_the_layout_before_shards_the_day_alone() -> None:
    at = datetime(2026, 12, 6, 23, 59, 59, 999999, tzinfo=UTC)

    assert stream_partition_of(at, str(uuid.uuid4()), 1) == "2026-12-06"


def test_shard_zero_is_the_day_and_the_others_carry_their_number() -> None:
    assert [stream_partition(DAY, shard) for shard in range(STREAM_SHARDS)] == [
        "2026-12-06",
        *(f"2026-12-06#{shard}" for shard in range(1, 8)),
    ]


def test_the_day_is_the_utc_day_of_the_recording() -> None:
    late_evening_in_new_york = datetime(2026, 12, 6, 20, 0, tzinfo=timezone(timedelta(hours=-5)))

    assert stream_partition_of(late_evening_in_new_york, "u", 1) == "2026-12-07"


def test_users_spread_over_every_shard_about_evenly() -> None:
    users = [str(uuid.UUID(int=n * 7919 + 1, version=4)) for n in range(8000)]

    counts = Counter(stream_shard(user, STREAM_SHARDS) for user in users)

    assert set(counts) == set(range(STREAM_SHARDS))
    assert max(counts.values()) < 1.15 * min(counts.values())


@pytest.mark.parametrize("shards", [0, STREAM_SHARDS + 1])
def test_writers_use_one_to_the_readers_shards(shards: int) -> None:
    with pytest.raises(ValueError, match="1 to 8 shards"):
        stream_shard("u", shards)


@pytest.mark.parametrize("shard", [-1, STREAM_SHARDS])
def test_a_shard_beyond_what_readers_read_has_no_partition(shard: int) -> None:
    with pytest.raises(ValueError, match="0 to 7"):
        stream_partition(DAY, shard)
