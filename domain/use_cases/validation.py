"""A request's inputs checked in one block, so the caller learns of every invalid field at once."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from domain.errors import FieldViolation, InvalidArgument, InvalidValue

T = TypeVar("T")


class _Invalid:
    """Stands for a field that did not parse, until the block ends with InvalidArgument."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


class Violations:
    """Collects the invalid fields of a request; leaving its block raises them together.

        with Violations() as check:
            email = check.parse("email", Email.parse, raw_email)
            password = check.parse("password", Password.parse, raw_password)
            check.rule("password", check_new_password, password, email=email)
        # here every value is parsed: the block raised InvalidArgument otherwise

    Inside the block, a field that did not parse holds a placeholder: hand it on only to
    ``rule``, which skips a rule whose inputs did not parse, or ask ``valid`` first. No
    placeholder outlives the block.
    """

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def __enter__(self) -> Violations:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.raise_if_any()

    def parse(self, field: str, parser: Callable[[str], T], raw: str) -> T:
        """``parser(raw)``; when it raises InvalidValue, the complaint is recorded under
        ``field`` and a placeholder returned."""
        try:
            return parser(raw)
        except InvalidValue as error:
            self.items.append(FieldViolation(field, str(error)))
            return cast(T, _INVALID)  # never seen after the block: leaving it raises

    def optional(self, field: str, parser: Callable[[str], T], raw: str | None) -> T | None:
        """Like ``parse`` for a field the request may leave out (None)."""
        return None if raw is None else self.parse(field, parser, raw)

    def rule(self, field: str, rule: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Runs ``rule``, which raises InvalidValue, and records its complaint under ``field``;
        skipped when one of its inputs did not parse (that field is reported already)."""
        if not self.valid(*args, *kwargs.values()):
            return
        try:
            rule(*args, **kwargs)
        except InvalidValue as error:
            self.items.append(FieldViolation(field, str(error)))

    @staticmethod
    def valid(*values: object) -> bool:
        """Whether every one of ``values`` parsed (inside the block; after it, all have)."""
        return not any(value is _INVALID for value in values)

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        """InvalidArgument with every violation so far; for checks that must stop early."""
        if self.items:
            raise InvalidArgument(self.items)
