"""Item sizes by the rules of AWS's "DynamoDB item sizes and formats" page, on worked examples."""

from __future__ import annotations

import pytest

from tools.capacity.item_size import item_size, number_size, value_size


def test_a_string_attribute_is_its_name_plus_its_utf8_bytes() -> None:
    assert item_size({"Id": {"S": "abc"}}) == 2 + 3
    # "é" is 2 bytes in UTF-8, "€" 3: bytes count, not characters.
    assert item_size({"Name": {"S": "é€"}}) == 4 + 5


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("1", 2),  # 1 significant digit: 1 byte, plus 1
        ("12", 2),
        ("123", 3),
        ("1234", 3),
        ("12345", 4),
        ("1200", 2),  # trailing zeros trimmed: "12"
        ("0.00012", 2),  # leading zeros trimmed: "12"
        ("-98.76", 3),  # "9876"
        ("0", 2),
        ("12345678901234567890123456789012345678", 20),  # 38 digits, DynamoDB's most
    ],
)
def test_a_number_is_one_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert number_size(number) == size
    assert item_size({"N": {"N": number}}) == 1 + size


def test_binary_counts_raw_bytes_not_base64() -> None:
    # "AAECAwQ=" is the base64 of 5 raw bytes.
    assert item_size({"Data": {"B": "AAECAwQ="}}) == 4 + 5


def test_null_and_boolean_are_one_byte() -> None:
    assert item_size({"Gone": {"NULL": True}, "On": {"BOOL": False}}) == (4 + 1) + (2 + 1)


def test_lists_and_maps_cost_3_bytes_plus_1_per_element() -> None:
    assert value_size({"L": []}) == 3
    assert value_size({"M": {}}) == 3
    # Two strings of 1 byte: 3 + (1 + 1) * 2.
    assert value_size({"L": [{"S": "a"}, {"S": "b"}]}) == 7
    # A map element counts its name: 3 + (len("Seq") + number "7" (2 bytes) + 1).
    assert value_size({"M": {"Seq": {"N": "7"}}}) == 3 + (3 + 2 + 1)


def test_a_nested_session_list_adds_up_level_by_level() -> None:
    session = {"M": {"SessionId": {"S": "s" * 36}, "TokenHash": {"S": "h" * 64}}}
    session_size = 3 + (9 + 36 + 1) + (9 + 64 + 1)
    assert value_size(session) == session_size
    assert item_size({"Sessions": {"L": [session, session]}}) == 8 + 3 + 2 * (session_size + 1)


def test_sets_are_the_sum_of_their_members() -> None:
    assert value_size({"SS": ["ab", "cde"]}) == 5
    assert value_size({"NS": ["1", "12345"]}) == 2 + 4
    assert value_size({"BS": ["AAE=", "AA=="]}) == 2 + 1


def test_an_absent_item_has_no_size() -> None:
    assert item_size(None) == 0


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not a DynamoDB attribute type"):
        value_size({"X": "?"})
