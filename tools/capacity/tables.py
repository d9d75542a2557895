"""What the calculator needs to know of a table: its key, and each global secondary index's key
and projection, read from the CreateTable arguments in persistence/schema.py.

An index holds an entry for an item only when the item has every key attribute of the index
(a sparse index), and the entry holds the projected attributes: all of them (ALL), the table's and
the index's keys (KEYS_ONLY), or those plus the listed ones (INCLUDE):
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Projections
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Item = Mapping[str, Any]


@dataclass(frozen=True)
class IndexModel:
    """One global secondary index: its name, key attributes and projection."""

    name: str
    key: tuple[str, ...]
    projection: str  # ALL, KEYS_ONLY or INCLUDE
    included: frozenset[str] = frozenset()

    def entry(self, item: Item | None, table_key: tuple[str, ...]) -> dict[str, Any] | None:
        """The index's entry for ``item``, or None when the item is not in the index."""
        if item is None or any(name not in item for name in self.key):
            return None
        if self.projection == "ALL":
            return dict(item)
        kept = {*self.key, *table_key, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in kept}

    def key_of(self, entry: Item) -> tuple[Any, ...]:
        return tuple(_hashable(entry[name]) for name in self.key)


@dataclass(frozen=True)
class TableModel:
    """One table: its name, key attributes and global secondary indexes."""

    name: str
    key: tuple[str, ...]
    indexes: tuple[IndexModel, ...] = ()

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> TableModel:
        """From CreateTable arguments, such as ``persistence.schema.users_table_definition``."""
        indexes = tuple(
            IndexModel(
                name=index["IndexName"],
                key=_key(index["KeySchema"]),
                projection=index["Projection"]["ProjectionType"],
                included=frozenset(index["Projection"].get("NonKeyAttributes", ())),
            )
            for index in definition.get("GlobalSecondaryIndexes", ())
        )
        return cls(definition["TableName"], _key(definition["KeySchema"]), indexes)

    def key_of(self, item: Item) -> tuple[Any, ...]:
        """The item's primary key, hashable: (("S", "id"),) for a table keyed on one string."""
        return tuple(_hashable(item[name]) for name in self.key)

    def key_item(self, item: Item) -> dict[str, Any]:
        """Just the key attributes of ``item``, as a GetItem ``Key``."""
        return {name: item[name] for name in self.key}


def _key(schema: list[Mapping[str, str]]) -> tuple[str, ...]:
    hash_first = sorted(schema, key=lambda element: element["KeyType"] != "HASH")
    return tuple(element["AttributeName"] for element in hash_first)


def _hashable(value: Mapping[str, Any]) -> tuple[str, Any]:
    ((kind, content),) = value.items()
    return kind, content
