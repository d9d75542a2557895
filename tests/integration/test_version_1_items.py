"""The service reads and updates items of schema version 1, before any migration, against moto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.errors import VersionConflict
from domain.use_cases.accounts import update_profile
from domain.use_cases.sessions import authenticate
from domain.values import PersonName, UserId
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, session_tokens
from tests.data_tool_helpers import (
    PASSWORD,
    POLICY,
    get_user_item,
    put_version_1_user,
)
from tests.fakes import FakeAccessTokenIssuer, FakePasswordHasher, FixedClock, recorded_lock_notices

LATER = T0 + timedelta(hours=1)


async def test_a_revision_less_item_is_updated_on_its_version_and_written_back_as_version_3(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user_id = await put_version_1_user(
        dynamodb_client, dynamodb_tables, "old@example.com", with_revision=False
    )
    stored = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert stored is not None and "Revision" not in stored and "EventSeq" not in stored
    version = int(stored["Version"]["N"])

    user = await update_profile(
        DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
        FixedClock(LATER),
        user_id=user_id,
        first_name="Augusta",
        last_name=None,
        expected_version=version,
    )

    assert user.version == version + 1
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "Augusta"}
    assert item["SchemaVersion"] == {"N": "5"}
    assert item["Revision"] == {"N": str(version + 1)}
    assert item["Version"] == {"N": str(version + 1)}
    assert "EventSeq" in item


async def test_a_stale_write_to_a_revision_less_item_is_refused_on_its_version(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user_id = await put_version_1_user(
        dynamodb_client, dynamodb_tables, "old@example.com", with_revision=False
    )
    first = DynamoUnitOfWork(dynamodb_client, dynamodb_tables)
    second = DynamoUnitOfWork(dynamodb_client, dynamodb_tables)
    async with first, second:
        mine = await first.users.require(UserId(user_id))
        theirs = await second.users.require(UserId(user_id))
        mine.update_profile(first_name=PersonName.parse("First"), last_name=None, now=LATER)
        theirs.update_profile(first_name=PersonName.parse("Second"), last_name=None, now=LATER)
        await first.users.update(mine)
        await first.commit()
        await second.users.update(theirs)
        with pytest.raises(VersionConflict):
            await second.commit()

    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "First"}
    assert item["SchemaVersion"] == {"N": "5"}


@pytest.mark.parametrize("with_revision", [True, False])
async def test_a_version_1_user_signs_in_and_its_item_becomes_version_3(
    dynamodb_client: Any, dynamodb_tables: TableNames, with_revision: bool
) -> None:
    user_id = await put_version_1_user(
        dynamodb_client, dynamodb_tables, "old@example.com", with_revision=with_revision
    )

    tokens = session_tokens(
        await authenticate(
            DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
            FakePasswordHasher(),
            FakeAccessTokenIssuer(),
            FixedClock(LATER),
            POLICY,
            recorded_lock_notices(),
            email="old@example.com",
            password=PASSWORD,
        )
    )

    assert tokens.user.id.value == user_id
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["SchemaVersion"] == {"N": "5"}
    assert item["Revision"] == {"N": "6"}, "one write after revision 5 (or version 5)"
    assert "Sessions" not in item and item["SessionEpoch"] == {"N": "0"}
    sessions = await dynamodb_client.query(
        TableName=dynamodb_tables.sessions,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user_id}},
        ConsistentRead=True,
    )
    assert [s["SessionId"]["S"] for s in sessions["Items"]] == [tokens.session_id]
