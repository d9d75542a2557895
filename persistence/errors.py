"""The one place that turns botocore errors into domain errors, keeping the original as cause."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from domain.errors import (
    ConcurrentWrite,
    DomainError,
    EmailAlreadyRegistered,
    StorageError,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)

# DynamoDB is there but refuses the rate of requests (a table's or the account's limit).
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
# Error codes after which the same request may well succeed later.
_UNAVAILABLE_CODES = THROTTLING_CODES | frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
# Cancellation-reason codes of TransactWriteItems that the same request, sent again, may clear.
_THROTTLED_REASONS = frozenset({"ProvisionedThroughputExceeded", "ThrottlingError"})
# Real DynamoDB cancels a transaction that touches an item another transaction (or a single write)
# has in flight, with this reason on that item, instead of waiting; and it fails a single write
# (PutItem, UpdateItem, DeleteItem) on an item with a transaction in flight with
# TransactionConflictException. botocore retries neither. Both mean "another writer is changing
# this user right now": a VersionConflict (ConcurrentWrite), which use cases answer by reading
# the user again and re-applying the change (domain/use_cases/retry.py), and which reaches the
# caller as ABORTED when that keeps happening. moto never sends either.
CONFLICT_REASON = "TransactionConflict"
CONFLICT_CODE = "TransactionConflictException"
# Endpoint unreachable, connect or read timeout, connection dropped.
_TRANSPORT_ERRORS = (ConnectionError, HTTPClientError)


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a ClientError, else None."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or None
    return None


def to_storage_error(error: BaseException, operation: str) -> DomainError:
    """StorageUnavailable if a retry may help, else StorageError; message: just the code.

    A single write that met a transaction in flight (TransactionConflictException) is a
    ConcurrentWrite: the use case re-reads and retries it.
    """
    what = error_code(error) or type(error).__name__
    if what == CONFLICT_CODE:
        return ConcurrentWrite()
    if isinstance(error, _TRANSPORT_ERRORS) or what in _UNAVAILABLE_CODES or _is_5xx(error):
        return StorageUnavailable(f"DynamoDB {operation} failed ({what}); retry later")
    return StorageError(f"DynamoDB {operation} failed ({what})")


def _is_5xx(error: BaseException) -> bool:
    # A server fault whose body named no known code (e.g. a proxy's or an emulator's error page).
    if not isinstance(error, ClientError):
        return False
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0) >= 500


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Re-raise any botocore error of the block as the matching domain error, from the original."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise to_storage_error(error, operation) from error


class Check(enum.Enum):
    """What the condition on one item of a transaction protects."""

    EMAIL_FREE = "the email guard must not exist yet"
    ID_FREE = "the user id must not exist yet"
    VERSION = "the stored user must not have changed since it was read"
    GUARD_OWNED = "the email guard, if any, must belong to this user"
    EVENT_SEQ_FREE = "no event of this user may have this sequence number yet"
    SESSION_FREE = "the session must not exist yet"
    SESSION_TOKEN = "the session must still hold the refresh token it rotates away"
    SESSION_WRITE = "none (a session write without condition)"


@dataclass(frozen=True)
class WriteCheck:
    """The condition one transaction item carries, and what its failure means."""

    check: Check
    expected_version: int = 0
    user_id: str = ""
    # For VERSION: a vanished user is UserNotFound (delete), not a VersionConflict (update).
    missing_is_not_found: bool = False


def cancellation_reasons(error: BaseException) -> list[dict[str, Any]]:
    """The per-item reasons of a cancelled transaction, in request order ([] for other errors)."""
    if not isinstance(error, ClientError) or error_code(error) != "TransactionCanceledException":
        return []
    # cast: botocore-stubs types a reason's Item as {"key", "value"}, but DynamoDB sends the
    # old item itself (attribute name -> AttributeValue); at runtime each reason is a plain dict.
    reasons = cast(list[dict[str, Any]], error.response.get("CancellationReasons") or [])
    return list(reasons)


def _reason_codes(error: BaseException) -> set[str]:
    """The codes of the items that stopped the transaction ("None": an item that did not)."""
    codes = {reason.get("Code") for reason in cancellation_reasons(error)}
    return {str(code) for code in codes if code not in ("None", None)}


def is_throttled_cancellation(error: BaseException) -> bool:
    """True if only throttling cancelled the transaction, so sending it again as is may land."""
    codes = _reason_codes(error)
    return bool(codes) and codes <= _THROTTLED_REASONS


def is_conflict_cancellation(error: BaseException) -> bool:
    """True if a concurrent write to one of its items (and nothing but that or throttling)
    cancelled the transaction: no condition failed, nothing was written."""
    codes = _reason_codes(error)
    return CONFLICT_REASON in codes and codes <= _THROTTLED_REASONS | {CONFLICT_REASON}


def is_conflict(error: BaseException) -> bool:
    """A conflict cancellation, or a single write refused by a transaction in flight."""
    return is_conflict_cancellation(error) or error_code(error) == CONFLICT_CODE


def transaction_error(error: BaseException, checks: Sequence[WriteCheck]) -> DomainError:
    """The domain error of a failed TransactWriteItems whose items carried ``checks``, in order.

    The first failed condition in request order decides, so callers order items by precedence.
    """
    for reason, check in zip(cancellation_reasons(error), checks, strict=False):
        if reason.get("Code") == "ConditionalCheckFailed":
            return condition_failed(check, reason.get("Item"))
    if is_conflict_cancellation(error):
        return ConcurrentWrite()
    if is_throttled_cancellation(error):
        return StorageUnavailable("DynamoDB TransactWriteItems was throttled; retry later")
    return to_storage_error(error, "TransactWriteItems")


def condition_failed(check: WriteCheck, old_item: dict[str, Any] | None) -> DomainError:
    """The domain error of ``check``'s condition failing, given the stored item (ALL_OLD)."""
    if check.check is Check.EMAIL_FREE:
        return EmailAlreadyRegistered()
    if check.check is Check.VERSION:
        if old_item is None and check.missing_is_not_found:
            return UserNotFound(f"no user with id {check.user_id}")
        actual = int(old_item["Version"]["N"]) if old_item and "Version" in old_item else None
        return VersionConflict(check.expected_version, actual)
    if check.check is Check.ID_FREE:
        return StorageError("a user with this id already exists")
    if check.check is Check.EVENT_SEQ_FREE:
        # Sequence numbers continue from the EventSeq as read: a taken one means another writer
        # recorded events for this user since (its user write lands in the same transaction).
        return VersionConflict(check.expected_version)
    if check.check is Check.SESSION_TOKEN:
        # Another refresh with the same token rotated it first: the use case reads it again.
        return ConcurrentWrite()
    if check.check is Check.SESSION_FREE:
        return StorageError("a session with this id already exists")
    if check.check is Check.SESSION_WRITE:
        return StorageError("a session write without condition failed its condition")
    return StorageError("the email guard belongs to another user; the tables are inconsistent")
