"""Units per DynamoDB request, from the request, the reply and the items before and after."""

from __future__ import annotations

from typing import Any

from persistence.schema import (
    emails_table_definition,
    events_table_definition,
    users_table_definition,
)
from tools.capacity.operations import Exchange, consumption, written_keys
from tools.capacity.tables import TableModel

TABLES = {
    definition["TableName"]: TableModel.from_definition(definition)
    for definition in (
        users_table_definition("Users"),
        emails_table_definition("UserEmails"),
        events_table_definition("UserEvents"),
    )
}
# The users table as the seed created it, both indexes projecting ALL (tables made before
# persistence/schema.py chose KEYS_ONLY still are): the rules below show on full index entries.
SEED_TABLES = TABLES | {
    "Users": TableModel.from_definition(
        users_table_definition("Users")
        | {
            "GlobalSecondaryIndexes": [
                index | {"Projection": {"ProjectionType": "ALL"}}
                for index in users_table_definition("Users")["GlobalSecondaryIndexes"]
            ]
        }
    )
}
USER_ID = "1" * 36


def user(size: int = 100, **extra: str) -> dict[str, Any]:
    """A user item of exactly ``size`` bytes (before ``extra``), with its EmailIndex key."""
    fixed = 2 + 36 + 10 + 15 + 3  # Id, EmailIndex and their values, the name "Pad"
    item = {
        "Id": {"S": USER_ID},
        "EmailIndex": {"S": "ada@example.com"},
        "Pad": {"S": "p" * (size - fixed)},
    }
    return item | {name: {"S": value} for name, value in extra.items()}


def ref(table: str, **key: str) -> tuple[str, tuple[Any, ...]]:
    return table, TABLES[table].key_of({name: {"S": value} for name, value in key.items()})


def test_the_fixture_user_has_the_size_asked() -> None:
    from tools.capacity.item_size import item_size

    assert item_size(user(1500)) == 1500


def test_a_consistent_get_is_1_unit_per_4_kb_and_a_miss_costs_the_minimum() -> None:
    request = {"TableName": "Users", "Key": {"Id": {"S": USER_ID}}, "ConsistentRead": True}
    hit = consumption(Exchange("GetItem", request, {"Item": user(5000)}), TABLES)
    miss = consumption(Exchange("GetItem", request | {"ConsistentRead": False}, {}), TABLES)

    assert dict(hit.reads) == {("Users", None): 2}
    assert dict(miss.reads) == {("Users", None): 0.5}
    assert hit.total_writes == 0


def test_batch_get_rounds_each_item_and_charges_keys_that_found_nothing() -> None:
    keys = [{"Id": {"S": str(n)}} for n in range(4)]
    request = {"RequestItems": {"Users": {"Keys": keys, "ConsistentRead": True}}}
    reply = {
        "Responses": {"Users": [user(1500), user(6600)]},  # 4 KB + 8 KB, not 8 KB
        "UnprocessedKeys": {"Users": {"Keys": keys[3:]}},  # asked again later: not charged now
    }

    assert dict(consumption(Exchange("BatchGetItem", request, reply), TABLES).reads) == {
        ("Users", None): 1 + 2 + 1
    }


def test_a_query_on_an_index_is_charged_to_the_index_by_the_summed_size() -> None:
    request = {"TableName": "UserEvents", "IndexName": "EventStream"}
    reply = {"Items": [user(1500)] * 3}  # 4,500 bytes: 2 units strong, 1 eventual

    assert dict(consumption(Exchange("Query", request, reply), TABLES).reads) == {
        ("UserEvents", "EventStream"): 1
    }


def test_a_registration_transaction_doubles_each_item_and_puts_into_the_email_index() -> None:
    guard = {"Email": {"S": "ada@example.com"}, "UserId": {"S": USER_ID}}
    request = {
        "TransactItems": [
            {"Put": {"TableName": "Users", "Item": user(1500)}},
            {"Put": {"TableName": "UserEmails", "Item": guard}},
        ]
    }
    user_ref, guard_ref = ref("Users", Id=USER_ID), ref("UserEmails", Email="ada@example.com")
    exchange = Exchange(
        "TransactWriteItems",
        request,
        {},
        before={user_ref: None, guard_ref: None},
        after={user_ref: user(1500), guard_ref: guard},
    )

    assert written_keys("TransactWriteItems", request, TABLES) == [
        ("Users", {"Id": {"S": USER_ID}}),
        ("UserEmails", {"Email": {"S": "ada@example.com"}}),
    ]
    result = consumption(exchange, SEED_TABLES)
    assert dict(result.writes) == {
        ("Users", None): 4,  # 1.5 KB: 2 units, doubled
        ("UserEmails", None): 2,
        ("Users", "EmailIndex"): 2,  # a put of the 1.5 KB entry, not doubled
    }


def test_a_rotation_that_moves_the_refresh_token_key_deletes_and_puts_the_index_entry() -> None:
    before, after = user(900, RefreshTokenIndex="a" * 64), user(900, RefreshTokenIndex="b" * 64)
    request = {"TransactItems": [{"Put": {"TableName": "Users", "Item": after}}]}
    user_ref = ref("Users", Id=USER_ID)
    exchange = Exchange(
        "TransactWriteItems", request, {}, before={user_ref: before}, after={user_ref: after}
    )

    assert dict(consumption(exchange, SEED_TABLES).writes) == {
        ("Users", None): 2,
        ("Users", "EmailIndex"): 1,  # a projected attribute changed
        ("Users", "RefreshTokenIndex"): 2,  # its key changed: delete + put
    }


def test_a_failed_condition_costs_the_item_as_it_stands_and_nothing_in_the_indexes() -> None:
    request = {"TableName": "Users", "Key": {"Id": {"S": USER_ID}}, "UpdateExpression": "SET X=:x"}
    user_ref = ref("Users", Id=USER_ID)
    failed = Exchange(
        "UpdateItem",
        request,
        {},
        error_code="ConditionalCheckFailedException",
        before={user_ref: user(2500)},
        after={user_ref: user(2500)},
    )
    nothing_there = Exchange(
        "UpdateItem",
        request,
        {},
        error_code="ConditionalCheckFailedException",
        before={user_ref: None},
        after={user_ref: None},
    )

    assert dict(consumption(failed, TABLES).writes) == {("Users", None): 3}
    assert dict(consumption(nothing_there, TABLES).writes) == {("Users", None): 1}


def test_a_condition_check_is_a_transactional_write_of_the_item_it_checks() -> None:
    key = {"Id": {"S": USER_ID}}
    request = {"TransactItems": [{"ConditionCheck": {"TableName": "Users", "Key": key}}]}
    user_ref = ref("Users", Id=USER_ID)
    exchange = Exchange(
        "TransactWriteItems", request, {}, before={user_ref: user(500)}, after={user_ref: user(500)}
    )

    assert dict(consumption(exchange, TABLES).writes) == {("Users", None): 2}


def test_a_cancelled_transaction_changes_no_index() -> None:
    request = {"TransactItems": [{"Put": {"TableName": "Users", "Item": user(500, A="b")}}]}
    user_ref = ref("Users", Id=USER_ID)
    exchange = Exchange(
        "TransactWriteItems",
        request,
        {},
        error_code="TransactionCanceledException",
        before={user_ref: user(500)},
        after={user_ref: user(500)},
    )

    assert dict(consumption(exchange, TABLES).writes) == {("Users", None): 2}


def test_throttled_requests_and_table_administration_consume_nothing() -> None:
    request = {"TableName": "Users", "Key": {"Id": {"S": USER_ID}}}
    throttled = Exchange(
        "GetItem", request, {}, error_code="ProvisionedThroughputExceededException"
    )
    described = Exchange("DescribeTable", {"TableName": "Users"}, {"Table": {}})

    for exchange in (throttled, described):
        result = consumption(exchange, TABLES)
        assert result.total_reads == result.total_writes == 0


def test_batch_writes_skip_unprocessed_items() -> None:
    guards = [{"Email": {"S": f"{n}@example.com"}, "UserId": {"S": USER_ID}} for n in range(3)]
    request = {"RequestItems": {"UserEmails": [{"PutRequest": {"Item": g}} for g in guards]}}
    reply = {"UnprocessedItems": {"UserEmails": [{"PutRequest": {"Item": guards[2]}}]}}
    refs = [ref("UserEmails", Email=f"{n}@example.com") for n in range(3)]
    exchange = Exchange(
        "BatchWriteItem",
        request,
        reply,
        before=dict.fromkeys(refs),
        after=dict(zip(refs, guards, strict=True)),
    )

    assert dict(consumption(exchange, TABLES).writes) == {("UserEmails", None): 2}
