"""put_alone's answers to DynamoDB's errors, on a scripted client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from domain.errors import ConcurrentWrite, StorageError, VersionConflict
from persistence.errors import Check, WriteCheck
from persistence.single_write import WRITE_ID, put_alone

PUT: dict[str, Any] = {
    "TableName": "Users",
    "Item": {"Id": {"S": "u"}, "Revision": {"N": "2"}, "Version": {"N": "1"}},
    "ConditionExpression": "#revision = :expected",
}
CHECK = WriteCheck(Check.VERSION, expected_version=1, user_id="u")


def client_error(code: str, **extra: Any) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, **extra}
    return ClientError(response, "PutItem")


class ScriptedClient:
    """Answers each put_item with the next scripted error (or success once they run out)."""

    def __init__(self, *answers: ClientError) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    async def put_item(self, **request: Any) -> dict[str, Any]:
        self.sent.append(request)
        if self.answers:
            raise self.answers.pop(0)
        return {}


async def test_it_sends_the_put_with_a_write_id_and_the_old_item_on_failure() -> None:
    client = ScriptedClient()
    await put_alone(client, PUT, CHECK)
    [sent] = client.sent
    assert sent["ConditionExpression"] == PUT["ConditionExpression"]
    assert sent["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert {k: v for k, v in sent["Item"].items() if k != WRITE_ID} == PUT["Item"]
    assert len(sent["Item"][WRITE_ID]["S"]) == 36


async def test_a_transaction_conflict_is_a_concurrent_write_for_the_use_case_to_retry() -> None:
    # botocore does not retry TransactionConflictException; the use case re-reads and re-applies
    # (the one layer that retries conflicts), so the write itself is sent once.
    client = ScriptedClient(client_error("TransactionConflictException"))
    with pytest.raises(ConcurrentWrite):
        await put_alone(client, PUT, CHECK)
    assert len(client.sent) == 1


async def test_a_failed_condition_with_another_item_stored_is_a_version_conflict() -> None:
    stored = {**PUT["Item"], "Version": {"N": "2"}, WRITE_ID: {"S": "someone else"}}
    client = ScriptedClient(client_error("ConditionalCheckFailedException", Item=stored))
    with pytest.raises(VersionConflict) as raised:
        await put_alone(client, PUT, CHECK)
    assert (raised.value.expected, raised.value.actual) == (1, 2)


async def test_other_errors_are_storage_errors() -> None:
    client = ScriptedClient(client_error("ValidationException"))
    with pytest.raises(StorageError, match="ValidationException"):
        await put_alone(client, PUT, CHECK)
