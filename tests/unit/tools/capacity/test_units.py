"""Read and write units on the worked examples of AWS's "DynamoDB read and write operations" page
and the on-demand pricing page."""

from __future__ import annotations

from tools.capacity.units import Read, read_units, write_units

KB = 1024


def test_a_3500_byte_read_costs_what_a_4_kb_read_costs() -> None:
    assert read_units(3500, Read.STRONGLY_CONSISTENT) == read_units(
        4 * KB, Read.STRONGLY_CONSISTENT
    )
    assert read_units(3500, Read.STRONGLY_CONSISTENT) == 1


def test_an_8_kb_item_costs_2_strong_1_eventual_4_transactional() -> None:
    assert read_units(8 * KB, Read.STRONGLY_CONSISTENT) == 2
    assert read_units(8 * KB, Read.EVENTUALLY_CONSISTENT) == 1
    assert read_units(8 * KB, Read.TRANSACTIONAL) == 4


def test_reads_round_up_to_the_next_4_kb() -> None:
    # The page's examples: 3.5 KB reads as 4 KB, 10 KB as 12 KB.
    assert read_units(int(3.5 * KB), Read.STRONGLY_CONSISTENT) == 1
    assert read_units(10 * KB, Read.STRONGLY_CONSISTENT) == 3
    # A Query returning 10 items of 40.8 KB in all is rounded once, to 44 KB: 11 units.
    assert read_units(int(40.8 * KB), Read.STRONGLY_CONSISTENT) == 11


def test_reading_nothing_still_costs_the_minimum() -> None:
    assert read_units(0, Read.STRONGLY_CONSISTENT) == 1
    assert read_units(0, Read.EVENTUALLY_CONSISTENT) == 0.5


def test_writes_round_up_to_the_next_kb_and_transactions_double() -> None:
    # The pricing page: a standard write of 1 KB is 1 unit, of 3 KB 3 units, transactional 6.
    assert write_units(KB) == 1
    assert write_units(3 * KB) == 3
    assert write_units(3 * KB, transactional=True) == 6
    # "If your item size were 7.5 KB, you would round up to 8 KB": 8 units.
    assert write_units(int(7.5 * KB)) == 8
    assert write_units(KB + 1) == 2
    assert write_units(0) == 1
