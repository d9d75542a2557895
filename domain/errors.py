"""Errors the domain raises; each names one failure a caller can act on."""

from __future__ import annotations

from dataclasses import dataclass


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request and why it is invalid."""

    field: str
    description: str


class InvalidArgument(DomainError):
    """The request is malformed; nothing was changed."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))


class InvalidValue(ValueError):
    """A value object refused its raw input (the field name is added by the caller)."""


class UserNotFound(DomainError):
    """No user has the given id or email."""

    def __init__(self, message: str = "user not found") -> None:
        super().__init__(message)


class EmailAlreadyRegistered(DomainError):
    """Another user already has this email, in some letter case."""

    def __init__(self) -> None:
        super().__init__("a user with this email already exists")


class VersionConflict(DomainError):
    """The user changed since the caller read it: its expected version is stale."""

    def __init__(self, expected: int, actual: int | None = None) -> None:
        self.expected = expected
        self.actual = actual
        detail = f"expected version {expected}"
        if actual is not None:
            detail += f", stored version is {actual}"
        super().__init__(f"the user was changed concurrently ({detail}); read it again and retry")


class StorageUnavailable(DomainError):
    """The store could not be reached or is throttling; the request may be retried."""

    def __init__(self, message: str = "the user store is unavailable; retry later") -> None:
        super().__init__(message)


class StorageError(DomainError):
    """The store refused a request for a reason a retry will not fix (misconfiguration, permissions)."""
