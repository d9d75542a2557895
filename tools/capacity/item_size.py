"""The size of a DynamoDB item, by the rules of "DynamoDB item sizes and formats":
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html

Items are in DynamoDB's typed JSON, as on the wire: ``{"Id": {"S": "..."}, "Version": {"N": "3"}}``.

- a string: its UTF-8 bytes; a binary: its raw bytes (the wire carries base64);
- a number: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1;
- a null or a Boolean: 1 byte;
- a list or a map: 3 bytes of overhead, plus each element's size plus 1 byte per element (a map
  element's size includes its name);
- a set: the sum of its members' sizes (the page names no overhead for sets);
- an attribute: the UTF-8 bytes of its name plus its value's size; an item: the sum over its
  attributes.
The 100 bytes of per-item overhead on that page are for storage billing, not for capacity units.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

CONTAINER_OVERHEAD = 3  # bytes of a list or map, whatever it holds
ELEMENT_OVERHEAD = 1  # bytes per element of a list or map
SCALAR_ONE_BYTE = 1  # a null or a Boolean


def item_size(item: Mapping[str, Any] | None) -> int:
    """Bytes of an item (0 for an absent one)."""
    if not item:
        return 0
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed value, such as ``{"S": "abc"}`` (3) or ``{"L": [...]}``."""
    ((kind, content),) = value.items()
    if kind == "S":
        return _utf8(content)
    if kind == "N":
        return number_size(content)
    if kind == "B":
        return _binary(content)
    if kind in ("BOOL", "NULL"):
        return SCALAR_ONE_BYTE
    if kind == "SS":
        return sum(_utf8(member) for member in content)
    if kind == "NS":
        return sum(number_size(member) for member in content)
    if kind == "BS":
        return sum(_binary(member) for member in content)
    if kind == "L":
        return CONTAINER_OVERHEAD + sum(value_size(v) + ELEMENT_OVERHEAD for v in content)
    if kind == "M":
        return CONTAINER_OVERHEAD + sum(
            _utf8(name) + value_size(v) + ELEMENT_OVERHEAD for name, v in content.items()
        )
    raise ValueError(f"not a DynamoDB attribute type: {kind!r}")


def number_size(text: str) -> int:
    """1 byte per two significant digits, rounded up, plus 1: "1234" is 3, "0.5" is 2."""
    # Decimal keeps every digit given (normalize() would round past 28 digits); trim the zeros.
    digits = "".join(map(str, Decimal(text).as_tuple().digits)).strip("0")
    significant = max(len(digits), 1)
    return math.ceil(significant / 2) + 1


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


def _binary(content: str | bytes) -> int:
    if isinstance(content, bytes):
        return len(content)
    return len(base64.b64decode(content))
