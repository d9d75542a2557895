"""``make capacity`` on the units of a bench run: the README's table, with its sources stated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.capacity.__main__ import main


def scenario(name: str, **by_target: tuple[float, float]) -> dict[str, object]:
    rows = []
    for where, (reads, writes) in by_target.items():
        table, _, index = where.partition("__")
        rows.append(
            {"table": table, "index": index or None, "read_units": reads, "write_units": writes}
        )
    return {"name": name, "by_target": rows}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    capacity = {
        "scenarios": [
            scenario("GetUser, 1 session", Users=(1, 0)),
            scenario("RefreshSession, 1 session", Users=(1, 2)),
            scenario(
                "Authenticate, 1 session",
                Users=(1, 4),
                UserEvents=(0, 2),
                UserEvents__EventStream=(0, 1),
            ),
        ]
    }
    document = {"machine": {"date": "2026-12-06 18:00 UTC"}, "capacity": capacity}
    path.write_text(json.dumps(document))
    return path


def test_the_model_prints_each_target_the_hot_key_and_the_prices(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--results", str(results)]) == 0

    out = capsys.readouterr().out
    # 2,000 events a second over the 8 keys of a day: 250 WCU on each.
    assert "| UserEvents/EventStream | 0 | 2,000 | 8 per day | 0.00% | 25% |" in out
    # 50,000 + 10,000 + 2,000 reads, 20,000 + 8,000 writes a second on Users.
    assert "| Users | 62,000 | 28,000 | one per user |" in out
    assert "$0.125 per million read request units" in out and "us-east-1" in out
    assert "(2026-12-06 18:00 UTC)" in out
    assert "Over a partition key's ceiling" not in out


def test_the_workload_can_be_changed(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--results", str(results), "--sign-ins", "500", "--user-reads", "0"]) == 0

    out = capsys.readouterr().out
    assert "| UserEvents/EventStream | 0 | 500 | 8 per day | 0.00% | 6% |" in out
    assert "Over a partition key's ceiling" not in out


def test_one_stream_shard_is_the_hot_key_of_old(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--results", str(results), "--stream-shards", "1"]) == 0

    out = capsys.readouterr().out
    assert "| UserEvents/EventStream | 0 | 2,000 | one per day | 0.00% | 200% |" in out
    assert "Over a partition key's ceiling" in out and "UserEvents/EventStream (200%" in out


def test_stream_shards_beyond_what_readers_read_are_refused(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--results", str(results), "--stream-shards", "9"])

    assert exit_info.value.code == 2


def test_a_negative_rate_is_refused(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--results", str(results), "--refreshes", "-1"])

    assert exit_info.value.code == 2
    assert "must not be negative" in capsys.readouterr().err
