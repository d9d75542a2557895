"""Write units a change of one item costs in one global secondary index, by "Provisioned
throughput considerations for global secondary indexes":
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes

- the item enters the index (it now has the index's key): one write of the new entry;
- it leaves the index (a key attribute removed, or the item deleted): one write of the old one;
- the index key changes (from A to B): two, a delete of the old entry and a put of the new;
- only projected attributes change: one write of the entry (the larger of old and new);
- nothing projected changes, or the item is in the index neither before nor after (a sparse
  index): none.
Each write is 1 unit per 1 KB of the index entry, rounded up. AWS documents the doubling of
transactional writes for the items of the transaction, not for the index updates they cause
(which DynamoDB applies asynchronously), so they are counted as standard writes here; the issue's
own figures (a refresh costing "about 6 in the indexes") count them the same way.
"""

from __future__ import annotations

from tools.capacity.item_size import item_size
from tools.capacity.tables import IndexModel, Item
from tools.capacity.units import write_units


def index_write_units(
    index: IndexModel, table_key: tuple[str, ...], before: Item | None, after: Item | None
) -> float:
    """Units ``index`` consumes when an item changes from ``before`` to ``after`` (None: absent)."""
    old, new = index.entry(before, table_key), index.entry(after, table_key)
    if old is None and new is None:
        return 0.0
    if old is None:
        assert new is not None
        return write_units(item_size(new))
    if new is None:
        return write_units(item_size(old))
    if index.key_of(old) != index.key_of(new):
        return write_units(item_size(old)) + write_units(item_size(new))
    if old == new:
        return 0.0
    return write_units(max(item_size(old), item_size(new)))
