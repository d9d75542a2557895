"""Raw items in DynamoDB: exactly the documented attributes, no clear password, a guard per user."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from domain.use_cases import register_user
from domain.values import Email, PersonName
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user, password_reset, refresh_token
from tests.fakes import FakePasswordHasher, FixedClock

CLEAR_PASSWORD = "correct horse battery staple"
BASE_ATTRIBUTES = {
    "Id", "Email", "EmailIndex", "FirstName", "LastName", "PasswordHash", "Status",
    "Version", "CreatedAt", "UpdatedAt", "RefreshTokens", "SchemaVersion",
}  # fmt: skip


async def raw_user(client: Any, tables: TableNames, user_id: str) -> dict[str, Any]:
    key = {"Id": {"S": user_id}}
    response = await client.get_item(TableName=tables.users, Key=key, ConsistentRead=True)
    return dict(response["Item"])


async def raw_guards(client: Any, tables: TableNames) -> set[tuple[str, str]]:
    items = (await client.scan(TableName=tables.emails, ConsistentRead=True))["Items"]
    assert all(set(item) == {"Email", "UserId"} for item in items)
    return {(item["Email"]["S"], item["UserId"]["S"]) for item in items}


async def test_a_registered_user_is_stored_with_the_documented_attributes_and_no_clear_password(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user = await register_user(
        DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
        FakePasswordHasher(),
        FixedClock(T0),
        email="  Ada.Lovelace@Example.COM ",
        password=CLEAR_PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)

    assert set(item) == BASE_ATTRIBUTES
    assert item["Email"] == {"S": "Ada.Lovelace@Example.COM"}
    assert item["EmailIndex"] == {"S": "ada.lovelace@example.com"}
    assert item["PasswordHash"] == {"S": user.password_hash}
    assert item["Version"] == {"N": "1"}
    assert item["SchemaVersion"] == {"N": "1"}
    assert item["CreatedAt"] == item["UpdatedAt"] == {"S": "2026-11-26T09:30:15.123456+00:00"}
    assert CLEAR_PASSWORD not in json.dumps(item)
    guards = await raw_guards(dynamodb_client, dynamodb_tables)
    assert guards == {("ada.lovelace@example.com", user.id.value)}


async def test_an_update_stores_the_token_index_the_reset_and_the_new_version(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user = new_user()
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        await uow.users.add(user)
        await uow.commit()

    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.refresh_tokens = (
            refresh_token("first", revoked=True),
            refresh_token("second", minutes=2),
        )
        stored.password_reset = password_reset("reset-hash")
        later = T0 + timedelta(days=1)
        stored.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=later)
        await uow.users.update(stored)
        await uow.commit()

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert set(item) == BASE_ATTRIBUTES | {"RefreshTokenIndex", "PasswordReset"}
    assert item["RefreshTokenIndex"] == {"S": "second"}
    assert item["Version"] == {"N": "2"}
    assert item["FirstName"] == {"S": "Augusta"}
    assert item["UpdatedAt"] == {"S": "2026-11-27T09:30:15.123456+00:00"}
    tokens = item["RefreshTokens"]["L"]
    assert [token["M"]["TokenHash"]["S"] for token in tokens] == ["first", "second"]
    assert set(tokens[0]["M"]) == {"TokenHash", "SessionId", "CreatedAt", "ExpiresAt", "RevokedAt"}
    assert set(item["PasswordReset"]["M"]) == {"TokenHash", "RequestedAt", "ExpiresAt"}


async def test_every_user_has_one_guard_item_which_follows_an_email_change(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = [new_user(f"Person{i}@Example.com") for i in range(3)]
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        for user in users:
            await uow.users.add(user)
        await uow.commit()
    assert await raw_guards(dynamodb_client, dynamodb_tables) == {
        (f"person{i}@example.com", user.id.value) for i, user in enumerate(users)
    }

    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        moved = await uow.users.get_by_id(users[0].id)
        assert moved is not None
        moved.change_email(Email.parse("Moved@Example.com"), now=T0)
        await uow.users.update(moved)
        await uow.commit()

    assert await raw_guards(dynamodb_client, dynamodb_tables) == {
        ("moved@example.com", users[0].id.value),
        ("person1@example.com", users[1].id.value),
        ("person2@example.com", users[2].id.value),
    }
    item = await raw_user(dynamodb_client, dynamodb_tables, users[0].id.value)
    assert item["Email"] == {"S": "Moved@Example.com"}
    assert item["EmailIndex"] == {"S": "moved@example.com"}
