"""Read and write units of one item or one page, by AWS's rules in "DynamoDB read and write
operations":
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html

- a strongly consistent read: 1 unit per 4 KB, rounded up; eventually consistent: half that;
  transactional: twice that. Reading an absent item still costs the minimum (1, or 0.5).
- a write: 1 unit per 1 KB, rounded up, of the larger of the item before and after (a delete: of
  the item deleted; nothing there: the minimum, 1); transactional: twice that.
- Query and Scan: the sum of the sizes of the items read, rounded up to 4 KB once per request.
"""

from __future__ import annotations

import enum
import math

READ_UNIT_BYTES = 4 * 1024
WRITE_UNIT_BYTES = 1024


class Read(enum.Enum):
    """How a read is made, and so what it costs per 4 KB."""

    EVENTUALLY_CONSISTENT = 0.5
    STRONGLY_CONSISTENT = 1.0
    TRANSACTIONAL = 2.0


def read_units(size: int, read: Read) -> float:
    """Units of reading ``size`` bytes (one item, or the sum of a Query or Scan page)."""
    return max(1, math.ceil(size / READ_UNIT_BYTES)) * read.value


def write_units(size: int, *, transactional: bool = False) -> float:
    """Units of writing an item of ``size`` bytes (the larger of before and after)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES)) * (2.0 if transactional else 1.0)
