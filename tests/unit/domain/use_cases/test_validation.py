"""A request's fields are checked in one block, which reports every invalid field at once."""

from __future__ import annotations

import pytest

from domain.errors import FieldViolation, InvalidArgument, InvalidValue
from domain.use_cases.validation import Violations


def positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) == 0:
        raise InvalidValue("must be a positive number")
    return int(raw)


def below(limit: int, value: int) -> None:
    if value >= limit:
        raise InvalidValue(f"must be below {limit}")


def test_a_block_of_valid_fields_gives_the_parsed_values() -> None:
    with Violations() as check:
        low = check.parse("low", positive, "3")
        high = check.optional("high", positive, "7")
        none = check.optional("none", positive, None)
        check.rule("low", below, 5, low)
    assert (low, high, none) == (3, 7, None)


def test_leaving_the_block_raises_every_violation_in_order() -> None:
    with pytest.raises(InvalidArgument) as raised, Violations() as check:
        check.parse("a", positive, "x")
        check.parse("b", positive, "2")
        check.optional("c", positive, "0")
        check.add("d", "give a or b")
    assert raised.value.violations == [
        FieldViolation("a", "must be a positive number"),
        FieldViolation("c", "must be a positive number"),
        FieldViolation("d", "give a or b"),
    ]


def test_a_rule_runs_on_parsed_values_and_records_its_complaint() -> None:
    with pytest.raises(InvalidArgument) as raised, Violations() as check:
        value = check.parse("value", positive, "9")
        check.rule("value", below, 5, value)
    assert raised.value.violations == [FieldViolation("value", "must be below 5")]


def test_a_rule_is_skipped_when_an_input_did_not_parse_so_a_field_is_reported_once() -> None:
    ran: list[object] = []

    def recording(value: object, *, limit: object) -> None:
        ran.append(value)
        raise InvalidValue("should not be reported")

    with pytest.raises(InvalidArgument) as raised, Violations() as check:
        value = check.parse("value", positive, "nope")
        limit = check.parse("limit", positive, "4")
        check.rule("value", recording, value, limit=limit)
        check.rule("limit", recording, limit, limit=value)  # a keyword input that did not parse
    assert ran == []
    assert [v.field for v in raised.value.violations] == ["value"]
    assert not Violations.valid(value) and Violations.valid(limit)


def test_raise_if_any_stops_early_inside_the_block() -> None:
    reached = False
    with pytest.raises(InvalidArgument), Violations() as check:
        check.add("ids", "too many")
        check.raise_if_any()
        reached = True
    assert not reached


def test_an_error_inside_the_block_passes_through_unchanged() -> None:
    with pytest.raises(KeyError), Violations() as check:
        check.parse("a", positive, "x")
        raise KeyError("boom")
