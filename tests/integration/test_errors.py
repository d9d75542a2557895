"""Botocore failures become domain errors that keep the original as cause, echoing no secret."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from botocore.validate import ParamValidationDecorator

from domain.errors import (
    EmailAlreadyRegistered,
    StorageError,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)
from domain.values import UserId
from persistence.dynamodb_client import USER_AGENT, DynamoDbOptions, open_dynamodb_client
from persistence.errors import Check, WriteCheck, transaction_error, translated
from persistence.readiness import check_ready
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from persistence.transaction import StagedWrite, apply_writes
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import new_user
from tests.conftest import free_port


@pytest_asyncio.fixture
async def unreachable_client() -> AsyncIterator[Any]:
    """A client whose endpoint is a loopback port nobody listens on, failing fast."""
    options = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with open_dynamodb_client(options) as client:
        yield client


def client_error(code: str, message: str = "", status: int = 400, **extra: Any) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
        **extra,
    }
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


def cancelled(*reasons: dict[str, Any]) -> ClientError:
    return client_error("TransactionCanceledException", CancellationReasons=list(reasons))


async def test_an_unreachable_backend_is_storage_unavailable_caused_by_the_botocore_error(
    unreachable_client: Any,
) -> None:
    uow = DynamoUnitOfWork(unreachable_client, TableNames())

    with pytest.raises(StorageUnavailable) as read_error:
        await uow.users.get_by_id(UserId.new())
    await uow.users.add(new_user())
    with pytest.raises(StorageUnavailable) as write_error:
        await uow.commit()

    assert isinstance(read_error.value.__cause__, EndpointConnectionError)
    assert isinstance(write_error.value.__cause__, EndpointConnectionError)


async def test_readiness_and_table_setup_report_an_unreachable_backend_as_unavailable(
    unreachable_client: Any,
) -> None:
    with pytest.raises(StorageUnavailable):
        await check_ready(unreachable_client, TableNames())
    with pytest.raises(StorageUnavailable):
        await ensure_tables(unreachable_client, TableNames(), wait_seconds=1)


async def test_readiness_passes_once_the_tables_exist_and_fails_without_them(
    dynamodb_client: Any, table_names: TableNames
) -> None:
    with pytest.raises(StorageError) as missing:
        await check_ready(dynamodb_client, table_names)
    assert isinstance(missing.value.__cause__, ClientError)

    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    await check_ready(dynamodb_client, table_names)


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    ],
)
def test_throttling_and_server_faults_are_storage_unavailable(code: str) -> None:
    with pytest.raises(StorageUnavailable) as error, translated("GetItem"):
        raise client_error(code)

    assert isinstance(error.value.__cause__, ClientError)


def test_an_unnamed_http_5xx_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable), translated("GetItem"):
        raise client_error("500", "<html>Internal Server Error</html>", status=500)


def test_other_failures_are_storage_errors_repeating_nothing_from_the_response() -> None:
    with pytest.raises(StorageError) as error, translated("PutItem"):
        raise client_error(
            "AccessDeniedException",
            "User arn:aws:iam::123456789012:user/secret-name is not authorized",
        )

    assert "secret-name" not in str(error.value) and "123456789012" not in str(error.value)
    assert "AccessDeniedException" in str(error.value)
    assert isinstance(error.value.__cause__, ClientError)


def test_a_transport_failure_of_another_kind_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable), translated("Query"):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(StorageError), translated("Query"):
        raise BotoCoreError()


def test_a_failed_guard_condition_means_the_email_is_taken() -> None:
    error = cancelled({"Code": "ConditionalCheckFailed"}, {"Code": "None"})

    checks = [WriteCheck(Check.EMAIL_FREE), WriteCheck(Check.ID_FREE)]

    assert isinstance(transaction_error(error, checks), EmailAlreadyRegistered)


def test_a_failed_version_condition_reports_the_stored_version_from_the_old_item() -> None:
    old_item = {"Id": {"S": "u"}, "Version": {"N": "5"}}
    error = cancelled({"Code": "ConditionalCheckFailed", "Item": old_item}, {"Code": "None"})

    checks = [WriteCheck(Check.VERSION, expected_version=3), WriteCheck(Check.GUARD_OWNED)]

    conflict = transaction_error(error, checks)

    assert isinstance(conflict, VersionConflict) and (conflict.expected, conflict.actual) == (3, 5)


def test_a_failed_version_condition_on_a_vanished_user_is_not_found_for_a_delete() -> None:
    error = cancelled({"Code": "ConditionalCheckFailed"}, {"Code": "None"})
    check = WriteCheck(Check.VERSION, expected_version=3, user_id="u-1", missing_is_not_found=True)

    checks = [check, WriteCheck(Check.GUARD_OWNED)]
    assert isinstance(transaction_error(error, checks), UserNotFound)


def test_the_first_failed_condition_in_request_order_decides() -> None:
    failed = {"Code": "ConditionalCheckFailed"}
    error = cancelled(failed, {"Code": "None"}, failed)
    checks = [
        WriteCheck(Check.VERSION, expected_version=1),
        WriteCheck(Check.GUARD_OWNED),
        WriteCheck(Check.EMAIL_FREE),
    ]

    assert isinstance(transaction_error(error, checks), VersionConflict)


def test_a_cancellation_by_throttling_alone_is_storage_unavailable() -> None:
    error = cancelled({"Code": "ThrottlingError"}, {"Code": "None"})

    checks = [WriteCheck(Check.EMAIL_FREE)] * 2
    assert isinstance(transaction_error(error, checks), StorageUnavailable)


def landed_once(landed: list[int]) -> Callable[[], None]:
    return lambda: landed.append(1)


class ThrottledClient:
    """Cancels the first ``cancellations`` transactions for throttling, then accepts."""

    def __init__(self, cancellations: int) -> None:
        self.cancellations = cancellations
        self.calls = 0

    async def transact_write_items(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.cancellations:
            raise cancelled({"Code": "ProvisionedThroughputExceeded"})
        return {}


async def test_a_transaction_cancelled_by_throttling_is_sent_again_and_then_lands() -> None:
    client, landed = ThrottledClient(cancellations=2), list[int]()
    # Two items: a commit of one Put and no event goes as a single PutItem, not a transaction.
    write = StagedWrite([{"Put": {}}] * 2, [WriteCheck(Check.EMAIL_FREE)] * 2, landed_once(landed))

    await apply_writes(client, [write])

    assert (client.calls, landed) == (3, [1])


async def test_a_transaction_that_stays_throttled_ends_as_storage_unavailable() -> None:
    client, landed = ThrottledClient(cancellations=99), list[int]()
    # Two items: a commit of one Put and no event goes as a single PutItem, not a transaction.
    write = StagedWrite([{"Put": {}}] * 2, [WriteCheck(Check.EMAIL_FREE)] * 2, landed_once(landed))

    with pytest.raises(StorageUnavailable):
        await apply_writes(client, [write])

    assert landed == []


async def test_the_client_sends_without_validating_parameters_with_a_fixed_user_agent(
    dynamodb_client: Any,
) -> None:
    config = dynamodb_client.meta.config
    # botocore wraps the serializer in its validator unless parameter_validation is off.
    assert not isinstance(dynamodb_client._serializer, ParamValidationDecorator)
    assert config._supplied_user_agent == USER_AGENT  # sent as is, not rebuilt per request
    assert config.request_checksum_calculation == "when_required"


@pytest.mark.parametrize(
    "request_fields",
    [
        {"Key": {"Id": {"S": ""}}},  # a key attribute may not be empty
        {"Key": {"Id": {"S": "a"}}, "ReturnConsumedCapacity": "SOMETIMES"},  # not in the enum
        {"Key": {"Id": {"S": "a"}}, "ProjectionExpression": ""},
    ],
)
async def test_a_bad_parameter_is_refused_by_dynamodb_as_a_validation_error(
    dynamodb_client: Any, table_names: TableNames, request_fields: dict[str, Any]
) -> None:
    # Without botocore's parameter validation (persistence.dynamodb_client), a malformed request
    # is sent and refused by DynamoDB: a ValidationException, mapped to a StorageError. (moto,
    # unlike DynamoDB, does not refuse an AttributeValue of the wrong JSON type.)
    await ensure_tables(dynamodb_client, table_names, wait_seconds=10)

    with pytest.raises(StorageError) as refused, translated("GetItem"):
        await dynamodb_client.get_item(TableName=table_names.users, **request_fields)

    assert str(refused.value) == "DynamoDB GetItem failed (ValidationException)"
    cause = refused.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.response["Error"]["Code"] == "ValidationException"
