"""moto's DynamoDB at realistic sizes, inside the embedded server only: an undo log for
TransactWriteItems and a sorted key list for Scan pages.

moto (5.2.5) makes a failed ``TransactWriteItems`` undoable by deep-copying every table the
transaction touches, once per item of the transaction, before applying anything; and its
``Scan`` sorts the whole table, then walks it to ``ExclusiveStartKey``, on every page. Both
take time in proportion to the table: a transaction takes seconds at 100,000 users.

The embedded server (``server/embedded_dynamodb.py``) applies one request at a time, so no
request sees a transaction half-applied, and restoring just the items a cancelled transaction
changed gives back exactly what the copies would. ``apply()`` replaces, in moto's classes:

- ``DynamoDBBackend.transact_write_items``: moto's own body (same checks in the same order, same
  errors, same cancellation reasons), with the table copies replaced by an undo log of the items
  it is about to change. It also rolls back when the request turns out malformed halfway (moto
  leaves the earlier items applied). A transaction touching a table with a stream runs moto's
  own code, whose copies also take back the stream's records.
- ``Table.scan``, for a table without a sort key whose partition key is a string, read without
  an index, segments or legacy ``ScanFilter``: the page starts by bisection in a sorted list of
  the table's keys, instead of sorting every item. Same order (moto's: by key; DynamoDB's is by
  hash, which no caller may rely on), same ``ExclusiveStartKey`` meaning (the items after it),
  same ``Limit``, 1 MB cap, filter and projection. Every other scan runs moto's own.
- ``Table.put_item`` and ``Table.delete_item``, to keep that key list in step. The list is made
  by the first scan of a table, and made again when its length disagrees with the table's.

Before patching, ``apply()`` checks moto's version and a fingerprint of the source of every
function it replaces or copies from, and raises ``MotoChanged`` if either differs: a moto
upgrade must be re-read against this module, not trusted silently.
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import RESULT_SIZE_LIMIT, Table

MOTO_VERSION = "5.2.5"
# SHA-256 (first 16 hex digits) of the source of each moto function replaced here or copied from.
FINGERPRINTS = {
    "DynamoDBBackend.transact_write_items": "81db2cb7d94e39c9",
    "Table.scan": "5ef1ab21eef06a74",
    "Table.put_item": "de23933013ef8426",
    "Table.delete_item": "1594f7b07616c8cb",
    "Table._get_last_evaluated_key": "2d0fae62fcd41aae",
}


class MotoChanged(RuntimeError):
    """The installed moto is not the one the embedded server's speed-ups were written against."""


def fingerprint(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def installed_fingerprints() -> dict[str, str]:
    return {name: fingerprint(_ORIGINALS[name]) for name in FINGERPRINTS}


def check_moto(
    installed_version: str | None = None, fingerprints: dict[str, str] | None = None
) -> None:
    """Raises MotoChanged unless moto's version and the patched functions are the known ones."""
    found_version = installed_version if installed_version is not None else version("moto")
    found = fingerprints if fingerprints is not None else installed_fingerprints()
    changed = sorted(name for name, value in FINGERPRINTS.items() if found.get(name) != value)
    if found_version != MOTO_VERSION or changed:
        raise MotoChanged(
            f"the embedded DynamoDB's speed-ups (server/embedded_moto_speedups.py) were written "
            f"against moto {MOTO_VERSION}; moto {found_version} is installed"
            + (f", whose {', '.join(changed)} differ" if changed else "")
            + ": re-read those functions, then update the module's MOTO_VERSION and FINGERPRINTS"
        )


def apply() -> None:
    """Patches moto's classes in this process (once; safe to call again)."""
    check_moto()
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.scan = _scan  # type: ignore[method-assign]
    Table.put_item = _put_item  # type: ignore[method-assign]
    Table.delete_item = _delete_item  # type: ignore[method-assign]


def restore() -> None:
    """Puts moto's own functions back (for tests that compare)."""
    DynamoDBBackend.transact_write_items = _ORIGINALS["DynamoDBBackend.transact_write_items"]  # type: ignore[method-assign]
    Table.scan = _ORIGINALS["Table.scan"]  # type: ignore[method-assign]
    Table.put_item = _ORIGINALS["Table.put_item"]  # type: ignore[method-assign]
    Table.delete_item = _ORIGINALS["Table.delete_item"]  # type: ignore[method-assign]


def applied() -> bool:
    return getattr(DynamoDBBackend, "transact_write_items", None) is _transact_write_items


_ORIGINALS: dict[str, Callable[..., Any]] = {
    "DynamoDBBackend.transact_write_items": DynamoDBBackend.transact_write_items,
    "Table.scan": Table.scan,
    "Table.put_item": Table.put_item,
    "Table.delete_item": Table.delete_item,
    "Table._get_last_evaluated_key": Table._get_last_evaluated_key,
}


# --- TransactWriteItems with an undo log --------------------------------------------------------


@dataclass
class _UndoLog:
    """The items a transaction is about to change, as they were before, to put back on failure."""

    entries: list[tuple[Table, DynamoType, DynamoType | None, Item | None]] = field(
        default_factory=list
    )

    def remember(self, table: Table, key: dict[str, Any], current: Item | None) -> None:
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        # An Update changes the item in place: keep a copy, not the object.
        self.entries.append((table, hash_key, range_key, copy.deepcopy(current)))

    def roll_back(self) -> None:
        for table, hash_key, range_key, before in reversed(self.entries):
            if range_key is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before  # type: ignore[assignment]  # no sort key
            elif before is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before
            _keep_key_list(table, hash_key, present=before is not None)
        self.entries.clear()


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's transact_write_items, with the undo log where moto deep-copies whole tables."""
    streamed = any(
        (table := self.tables.get(next(iter(item.values())).get("TableName"))) is not None
        and table.stream_shard is not None
        for item in transact_items
    )
    if streamed:
        _ORIGINALS["DynamoDBBackend.transact_write_items"](self, transact_items)
        return
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    undo = _UndoLog()
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    try:
        for item in transact_items:
            original_item: dict[str, Any] | None = None
            if len(list(item.keys())) > 1:
                raise TransactWriteSingleOpException
            try:
                op_type, op = next(iter(item.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                condition_expression = op.get("ConditionExpression")
                expression_attribute_names = op.get("ExpressionAttributeNames")
                expression_attribute_values = op.get("ExpressionAttributeValues")
                return_values_on_condition_check_failure = op.get(
                    "ReturnValuesOnConditionCheckFailure"
                )
                if op_type == "Put":
                    attrs = op["Item"]
                    table = self.get_table(table_name)
                    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = attrs[table.range_key_attr]
                else:
                    key = op["Key"]
                check_unicity(table_name, key)
                current = self.get_item(table_name, key)
                if condition_expression is not None:
                    condition_op = get_filter_expression(
                        condition_expression,
                        expression_attribute_names,
                        expression_attribute_values,
                    )
                    if not condition_op.expr(current):
                        if return_values_on_condition_check_failure == "ALL_OLD" and current:
                            original_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=original_item)
                if op_type != "ConditionCheck":
                    undo.remember(self.get_table(table_name), key, current)
                if op_type == "Put":
                    self.put_item(
                        table_name,
                        op["Item"],
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                elif op_type == "Delete":
                    self.delete_item(
                        table_name,
                        key,
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                elif op_type == "Update":
                    self.update_item(
                        table_name,
                        key,
                        update_expression=op["UpdateExpression"],
                        condition_expression=condition_expression,
                        expression_attribute_names=expression_attribute_names,
                        expression_attribute_values=expression_attribute_values,
                    )
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                raise
            except ConditionalCheckFailed as error:
                errors.append(("ConditionalCheckFailed", str(error.message), original_item))  # type: ignore[arg-type]
            except Exception as error:
                errors.append((type(error).__name__, str(error), original_item))  # type: ignore[arg-type]
    except BaseException:
        undo.roll_back()
        raise
    if any(code is not None for code, _, _ in errors):
        undo.roll_back()
        raise TransactionCanceledException(errors)


# --- Scan pages from a sorted key list ----------------------------------------------------------


@dataclass
class _KeyList:
    """A table's partition keys (strings), sorted as moto sorts them, and as a set."""

    ordered: list[str]
    present: set[str]

    @classmethod
    def of(cls, table: Table) -> _KeyList:
        keys = [hash_key.value for hash_key in table.items]
        return cls(sorted(keys), set(keys))

    def add(self, value: str) -> None:
        if value not in self.present:
            self.present.add(value)
            bisect.insort(self.ordered, value)

    def discard(self, value: str) -> None:
        if value in self.present:
            self.present.remove(value)
            del self.ordered[bisect.bisect_left(self.ordered, value)]


_key_lists: weakref.WeakKeyDictionary[Table, _KeyList] = weakref.WeakKeyDictionary()


def _keep_key_list(table: Table, hash_key: DynamoType, *, present: bool) -> None:
    keys = _key_lists.get(table)
    if keys is None or table.range_key_attr is not None:
        return
    if present:
        keys.add(hash_key.value)
    else:
        keys.discard(hash_key.value)


def _key_list(table: Table) -> _KeyList:
    keys = _key_lists.get(table)
    if keys is None or len(keys.ordered) != len(table.items):
        keys = _key_lists[table] = _KeyList.of(table)
    return keys


def _put_item(self: Table, *args: Any, **kwargs: Any) -> Item:
    item: Item = _ORIGINALS["Table.put_item"](self, *args, **kwargs)
    _keep_key_list(self, item.hash_key, present=True)
    return item


def _delete_item(self: Table, hash_key: DynamoType, range_key: DynamoType | None) -> Item | None:
    item: Item | None = _ORIGINALS["Table.delete_item"](self, hash_key, range_key)
    if item is not None and range_key is None:
        _keep_key_list(self, hash_key, present=False)
    return item


def _is_string(value: Any) -> bool:
    return isinstance(value, dict) and list(value) == ["S"] and isinstance(value["S"], str)


def _scan(
    self: Table,
    filters: dict[str, Any],
    limit: int,
    exclusive_start_key: dict[str, Any],
    filter_expression: Any = None,
    index_name: str | None = None,
    consistent_read: bool = False,
    projection_expression: list[list[str]] | None = None,
    segments: tuple[None, None] | tuple[int, int] = (None, None),
) -> tuple[list[Item], int, dict[str, Any] | None]:
    """moto's scan; for a string-keyed table without sort key, its page found by bisection."""
    if (
        index_name
        or filters
        or segments != (None, None)
        or self.range_key_attr is not None
        or self.hash_key_type != "S"
        or (
            exclusive_start_key is not None
            and not _is_string(exclusive_start_key.get(self.hash_key_attr))
        )
    ):
        return _ORIGINALS["Table.scan"](  # type: ignore[no-any-return]
            self,
            filters,
            limit,
            exclusive_start_key,
            filter_expression,
            index_name,
            consistent_read,
            projection_expression,
            segments,
        )
    keys = _key_list(self)
    start = 0
    if exclusive_start_key is not None:  # moto skips every item up to and including it
        start = bisect.bisect_right(keys.ordered, exclusive_start_key[self.hash_key_attr]["S"])
    results: list[Item] = []
    result_size = 0
    scanned_count = 0
    last_evaluated_key = None
    for position in range(start, len(keys.ordered)):
        item: Item = self.items[DynamoType({"S": keys.ordered[position]})]  # type: ignore[assignment]
        # From here on as moto's loop, for an item that needs no filter.
        reached_length_limit = len(results) == limit
        reached_size_limit = (result_size + item.size()) > RESULT_SIZE_LIMIT
        if reached_length_limit or reached_size_limit:
            last_evaluated_key = self._get_last_evaluated_key(results[-1], index_name)
            break
        results.append(copy.deepcopy(item))
        result_size += item.size()
        scanned_count += 1
    if filter_expression is not None:
        results = [item for item in results if filter_expression.expr(item)]
    if projection_expression:
        results = [r.project(projection_expression) for r in results]
    return results, scanned_count, last_evaluated_key
