"""Collecting every invalid field of a request, so the caller learns of all of them at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from domain.errors import FieldViolation, InvalidArgument, InvalidValue

T = TypeVar("T")


class Violations:
    """Collects every invalid field of a request, so the caller learns of all of them at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def parse(self, field: str, parser: Callable[[str], T], raw: str) -> T | None:
        try:
            return parser(raw)
        except InvalidValue as error:
            self.items.append(FieldViolation(field, str(error)))
            return None

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)

    def check(self, field: str, rule: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a rule that raises InvalidValue; record its complaint under ``field``."""
        try:
            rule(*args, **kwargs)
        except InvalidValue as error:
            self.items.append(FieldViolation(field, str(error)))
