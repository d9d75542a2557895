"""The embedded DynamoDB's speed-ups refuse a moto they were not written against."""

from __future__ import annotations

import pytest

from server import embedded_moto_speedups
from server.embedded_moto_speedups import MOTO_VERSION, MotoChanged, check_moto


def test_the_installed_moto_is_the_one_the_speed_ups_were_written_against() -> None:
    check_moto()  # a moto upgrade fails here first: re-read the patched functions


def test_another_moto_version_is_refused_by_name() -> None:
    with pytest.raises(MotoChanged, match=r"written against moto 5\.2\.5; moto 5\.3\.0 is"):
        check_moto(installed_version="5.3.0")


def test_a_changed_patched_function_is_refused_by_name() -> None:
    fingerprints = embedded_moto_speedups.installed_fingerprints()
    fingerprints["Table.scan"] = "0" * 16

    with pytest.raises(MotoChanged, match=r"whose Table\.scan differ: re-read"):
        check_moto(installed_version=MOTO_VERSION, fingerprints=fingerprints)


def test_the_embedded_server_applies_them_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    from server.embedded_dynamodb import _make_server

    for cls, name in (
        (DynamoDBBackend, "transact_write_items"),
        (Table, "scan"),
        (Table, "put_item"),
        (Table, "delete_item"),
    ):
        monkeypatch.setattr(cls, name, getattr(cls, name))  # restored after the test
    embedded_moto_speedups.restore()

    _make_server("127.0.0.1", 0, speedups=False).server_close()
    assert not embedded_moto_speedups.applied()
    _make_server("127.0.0.1", 0).server_close()
    assert embedded_moto_speedups.applied()
