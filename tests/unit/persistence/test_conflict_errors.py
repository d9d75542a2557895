"""DynamoDB's answers to concurrent writes on one item become a ConcurrentWrite (ABORTED once the
use case's re-reads are spent), never a taken email, a server fault or an unavailable store."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from domain.errors import (
    ConcurrentWrite,
    EmailAlreadyRegistered,
    StorageError,
    StorageUnavailable,
    VersionConflict,
)
from persistence.errors import (
    Check,
    WriteCheck,
    is_conflict,
    to_storage_error,
    transaction_error,
    translated,
)
from persistence.transaction import StagedWrite, apply_writes

REGISTRATION = [WriteCheck(Check.EMAIL_FREE), WriteCheck(Check.ID_FREE)]
CONFLICT = {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
NONE = {"Code": "None"}


def client_error(code: str, operation: str, **extra: Any) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": "..."},
        "ResponseMetadata": {"HTTPStatusCode": 400},
        **extra,
    }
    return ClientError(response, operation)  # type: ignore[arg-type]


def cancelled(*reasons: dict[str, Any]) -> ClientError:
    return client_error(
        "TransactionCanceledException", "TransactWriteItems", CancellationReasons=list(reasons)
    )


@pytest.mark.parametrize(
    "reasons",
    [
        [CONFLICT, NONE],
        [NONE, CONFLICT],
        [CONFLICT, CONFLICT],
        [CONFLICT, {"Code": "ThrottlingError"}],
    ],
    ids=["guard", "user", "both", "with-throttling"],
)
def test_a_registration_cancelled_by_a_concurrent_write_is_a_concurrent_write(
    reasons: list[dict[str, Any]],
) -> None:
    mapped = transaction_error(cancelled(*reasons), REGISTRATION)

    # A VersionConflict, so use cases retry it; never EmailAlreadyRegistered or StorageError.
    assert isinstance(mapped, ConcurrentWrite) and isinstance(mapped, VersionConflict)
    assert "under way" in str(mapped)


def test_a_failed_condition_decides_over_a_conflict_on_another_item() -> None:
    failed = {"Code": "ConditionalCheckFailed"}

    assert isinstance(
        transaction_error(cancelled(failed, CONFLICT), REGISTRATION), EmailAlreadyRegistered
    )


def test_a_conflict_beside_a_validation_error_is_not_retried_as_a_conflict() -> None:
    error = cancelled(CONFLICT, {"Code": "ValidationError"})

    assert not is_conflict(error)
    assert type(transaction_error(error, REGISTRATION)) is StorageError


def test_a_single_write_refused_by_a_transaction_in_flight_is_a_concurrent_write() -> None:
    error = client_error("TransactionConflictException", "PutItem")

    assert is_conflict(error)
    assert isinstance(to_storage_error(error, "PutItem"), ConcurrentWrite)
    with pytest.raises(ConcurrentWrite) as raised:
        with translated("PutItem"):
            raise error
    assert raised.value.__cause__ is error


def test_throttling_alone_is_not_a_conflict() -> None:
    assert not is_conflict(cancelled({"Code": "ThrottlingError"}, NONE))
    assert not is_conflict(client_error("ProvisionedThroughputExceededException", "PutItem"))
    assert isinstance(
        to_storage_error(client_error("ThrottlingException", "PutItem"), "PutItem"),
        StorageUnavailable,
    )


class ConflictingClient:
    """Cancels every transaction with TransactionConflict on its first item."""

    def __init__(self) -> None:
        self.calls = 0

    async def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise cancelled(CONFLICT, NONE)


async def test_a_conflict_cancellation_reaches_the_use_case_at_once_with_its_cause() -> None:
    client, landed = ConflictingClient(), []
    write = StagedWrite([{"Put": {}}, {"Put": {}}], REGISTRATION, lambda: landed.append(1))

    with pytest.raises(ConcurrentWrite) as raised:
        await apply_writes(client, [write])

    # Not sent again as is: the use case re-reads and retries (one layer of retries, not two).
    assert client.calls == 1 and landed == []
    assert isinstance(raised.value.__cause__, ClientError)
