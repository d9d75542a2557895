"""The GSI write rules of AWS's "Provisioned throughput considerations for global secondary
indexes", on the users table's two indexes as the seed created them (projecting ALL, as tables
made before KEYS_ONLY still do) and as persistence/schema.py defines them today."""

from __future__ import annotations

from typing import Any

from persistence.schema import users_table_definition
from tools.capacity.index_writes import index_write_units
from tools.capacity.tables import IndexModel, TableModel

USERS = TableModel.from_definition(users_table_definition("Users"))
# As the seed created them; the rules are the same for any projection that holds the attribute.
EMAIL = IndexModel("EmailIndex", ("EmailIndex",), "ALL")
REFRESH = IndexModel("RefreshTokenIndex", ("RefreshTokenIndex",), "ALL")


def user(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "Id": {"S": "0" * 36},
        "EmailIndex": {"S": "ada@example.com"},
        "FirstName": {"S": "Ada"},
    }
    for name, value in changes.items():
        if value is None:
            item.pop(name, None)
        else:
            item[name] = {"S": value}
    return item


def units(index: IndexModel, before: Any, after: Any) -> float:
    return index_write_units(index, USERS.key, before, after)


def test_the_indexes_come_from_the_schema_with_their_keys_and_projections() -> None:
    assert [(index.name, index.key, index.projection) for index in USERS.indexes] == [
        ("EmailIndex", ("EmailIndex",), "KEYS_ONLY"),
        ("RefreshTokenIndex", ("RefreshTokenIndex",), "KEYS_ONLY"),
    ]


def test_on_todays_schema_a_profile_change_costs_the_email_index_nothing() -> None:
    today_email = USERS.indexes[0]
    assert units(today_email, user(), user(FirstName="Augusta")) == 0
    assert units(today_email, None, user()) == 1  # a new user still enters it


def test_a_new_item_with_the_index_key_is_one_put_into_the_index() -> None:
    assert units(EMAIL, None, user()) == 1


def test_an_item_without_the_index_key_before_and_after_costs_the_index_nothing() -> None:
    # A sparse index: RefreshTokenIndex is absent until a sign-in.
    assert units(REFRESH, None, user()) == 0
    assert units(REFRESH, user(), user(FirstName="Augusta")) == 0


def test_a_changed_index_key_is_a_delete_and_a_put() -> None:
    assert units(REFRESH, user(RefreshTokenIndex="a"), user(RefreshTokenIndex="b")) == 2


def test_a_changed_projected_attribute_is_one_write_and_an_unchanged_item_none() -> None:
    assert units(EMAIL, user(), user(FirstName="Augusta")) == 1
    assert units(EMAIL, user(), user()) == 0


def test_an_item_leaving_the_index_is_one_delete() -> None:
    assert units(REFRESH, user(RefreshTokenIndex="a"), user(RefreshTokenIndex=None)) == 1
    assert units(EMAIL, user(), None) == 1


def test_index_writes_are_sized_by_the_entry_in_1_kb_units() -> None:
    big = user(FirstName="x" * 1500)  # about 1.5 KB: 2 units per write
    assert units(EMAIL, None, big) == 2
    assert units(REFRESH, big | {"RefreshTokenIndex": {"S": "a"}}, user(RefreshTokenIndex="b")) == 3


def test_a_keys_only_index_ignores_changes_outside_its_projection() -> None:
    index = IndexModel("ByEmail", ("EmailIndex",), "KEYS_ONLY")
    assert index_write_units(index, ("Id",), user(), user(FirstName="Augusta")) == 0
    included = IndexModel("ByEmail", ("EmailIndex",), "INCLUDE", frozenset({"FirstName"}))
    assert index_write_units(included, ("Id",), user(), user(FirstName="Augusta")) == 1
