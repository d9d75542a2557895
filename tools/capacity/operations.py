"""The units one DynamoDB request consumed, from the request, the reply and, for writes, the items
it touched as they were before and after it. The rules and their sources:

- GetItem, BatchGetItem, Query, Scan, TransactGetItems: "DynamoDB read and write operations",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
  (a BatchGetItem key that finds nothing costs the minimum read: BatchGetItem's API reference,
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html).
  Query and Scan count the items the reply carries: the service sends neither a
  ProjectionExpression nor a FilterExpression on a request path, so those are the items read.
- PutItem, UpdateItem, DeleteItem, BatchWriteItem: the same page; a write whose condition fails
  still consumes the units of the item as it stands (at least 1), and writes nothing.
- TransactWriteItems: each Put, Update, Delete and ConditionCheck is a transactional write of its
  item (twice a standard one): "Amazon DynamoDB Transactions: capacity management",
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling
  A cancelled transaction is counted as if each action consumed the transactional write of its
  item as it stands, like a failed conditional write (AWS does not break that charge down).
- Index writes: tools.capacity.index_writes, only for changes that landed.
Errors other than a failed condition or a cancelled transaction (throttling, validation) are
counted as consuming nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.capacity.consumption import Consumption
from tools.capacity.index_writes import index_write_units
from tools.capacity.item_size import item_size
from tools.capacity.tables import Item, TableModel
from tools.capacity.units import Read, read_units, write_units

CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELED = "TransactionCanceledException"
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# (table name, primary key as TableModel.key_of gives it)
ItemRef = tuple[str, tuple[Any, ...]]


@dataclass
class Exchange:
    """One request as the backend saw it: its reply (or error code) and, for a write, every item
    it names as it was just before and just after (None: absent)."""

    operation: str
    request: dict[str, Any]
    reply: dict[str, Any]
    error_code: str | None = None
    before: dict[ItemRef, Item | None] = field(default_factory=dict)
    after: dict[ItemRef, Item | None] = field(default_factory=dict)


def written_keys(
    operation: str, request: Mapping[str, Any], tables: Mapping[str, TableModel]
) -> list[tuple[str, dict[str, Any]]]:
    """(table name, Key) of every item a write request names, for reading them before and after.

    Tables the calculator does not know are left out (their writes are then not counted).
    """
    return [
        (table, key)
        for table, _, key in _write_actions(operation, request, tables)
        if table in tables
    ]


def consumption(exchange: Exchange, tables: Mapping[str, TableModel]) -> Consumption:
    """The units ``exchange`` consumed, per table and index."""
    result = Consumption()
    operation, request, reply = exchange.operation, exchange.request, exchange.reply
    if exchange.error_code is not None and exchange.error_code not in (
        CONDITION_FAILED,
        TRANSACTION_CANCELED,
    ):
        return result
    if operation == "GetItem":
        size = item_size(reply.get("Item"))
        result.read(request["TableName"], None, read_units(size, _consistency(request)))
    elif operation == "BatchGetItem":
        _batch_get(request, reply, result)
    elif operation in ("Query", "Scan"):
        size = sum(item_size(item) for item in reply.get("Items", ()))
        units = read_units(size, _consistency(request))
        result.read(request["TableName"], request.get("IndexName"), units)
    elif operation == "TransactGetItems":
        answers = list(reply.get("Responses") or [])  # in the order of the request
        for position, action in enumerate(request["TransactItems"]):
            answer = answers[position] if position < len(answers) else {}
            size = item_size(answer.get("Item"))
            result.read(action["Get"]["TableName"], None, read_units(size, Read.TRANSACTIONAL))
    elif operation in WRITES:
        landed = exchange.error_code is None
        transactional = operation == "TransactWriteItems"
        unprocessed = _unprocessed(reply, tables)
        for table_name, action, key in _write_actions(operation, request, tables):
            table = tables.get(table_name)
            if table is None or (table_name, _canonical(key)) in unprocessed:
                continue
            ref = table_name, table.key_of(key)
            before, after = exchange.before.get(ref), exchange.after.get(ref)
            changes = landed and action != "ConditionCheck"
            _item_write(result, table, before, after if changes else before, transactional)
    return result


def _item_write(
    result: Consumption,
    table: TableModel,
    before: Item | None,
    after: Item | None,
    transactional: bool,
) -> None:
    size = max(item_size(before), item_size(after))
    result.write(table.name, None, write_units(size, transactional=transactional))
    for index in table.indexes:
        units = index_write_units(index, table.key, before, after)
        if units:
            result.write(table.name, index.name, units)


def _write_actions(
    operation: str, request: Mapping[str, Any], tables: Mapping[str, TableModel]
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(table name, action, Key) of each item a write names."""

    def key(table: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if action == "Put":
            model = tables.get(table)
            return model.key_item(body["Item"]) if model is not None else {}
        return dict(body["Key"])

    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        action = operation.removesuffix("Item")
        table = request["TableName"]
        yield table, action, key(table, action, request)
    elif operation == "BatchWriteItem":
        for table, requests in request["RequestItems"].items():
            for entry in requests:
                if "PutRequest" in entry:
                    yield table, "Put", key(table, "Put", entry["PutRequest"])
                else:
                    yield table, "Delete", key(table, "Delete", entry["DeleteRequest"])
    elif operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            ((action, body),) = entry.items()
            yield body["TableName"], action, key(body["TableName"], action, body)


def _batch_get(request: Mapping[str, Any], reply: Mapping[str, Any], result: Consumption) -> None:
    unprocessed = reply.get("UnprocessedKeys") or {}
    for table, spec in request["RequestItems"].items():
        read = _consistency(spec)
        asked = len(spec["Keys"]) - len((unprocessed.get(table) or {}).get("Keys", ()))
        found = reply.get("Responses", {}).get(table, [])
        units = sum(read_units(item_size(item), read) for item in found)
        units += max(0, asked - len(found)) * read_units(0, read)
        result.read(table, None, units)


def _unprocessed(
    reply: Mapping[str, Any], tables: Mapping[str, TableModel]
) -> set[tuple[str, str]]:
    """The (table, key) of BatchWriteItem's UnprocessedItems: not written, not charged."""
    left = {"RequestItems": reply.get("UnprocessedItems") or {}}
    return {
        (table, _canonical(key)) for table, _, key in _write_actions("BatchWriteItem", left, tables)
    }


def _canonical(key: Mapping[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _consistency(request: Mapping[str, Any]) -> Read:
    if request.get("ConsistentRead"):
        return Read.STRONGLY_CONSISTENT
    return Read.EVENTUALLY_CONSISTENT
