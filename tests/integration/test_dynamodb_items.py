"""Raw items in DynamoDB: exactly the documented attributes, no clear password, a guard per user."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from domain.policies import AuthPolicy
from domain.secret_tokens import parse_token
from domain.use_cases.accounts import register_user
from domain.values import Email, PersonName
from persistence.schema import EMAIL_INDEX, REFRESH_TOKEN_INDEX, TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user
from tests.fakes import FakePasswordHasher, FixedClock

CLEAR_PASSWORD = "correct horse battery staple"
BASE_ATTRIBUTES = {
    "Id", "Email", "EmailIndex", "FirstName", "LastName", "PasswordHash", "Status",
    "Version", "Revision", "CreatedAt", "UpdatedAt", "Sessions", "FailedLogins", "SchemaVersion",
    "EventSeq",
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
    assert item["SchemaVersion"] == {"N": "2"}
    assert item["CreatedAt"] == item["UpdatedAt"] == {"S": "2026-11-26T09:30:15.123456+00:00"}
    assert CLEAR_PASSWORD not in json.dumps(item)
    guards = await raw_guards(dynamodb_client, dynamodb_tables)
    assert guards == {("ada.lovelace@example.com", user.id.value)}


async def test_an_update_stores_only_token_hashes_the_index_of_the_newest_and_the_new_version(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    policy = AuthPolicy()
    user = new_user()
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        await uow.users.add(user)
        await uow.commit()

    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        first, first_token = stored.start_session(T0, policy.sessions)
        later = T0 + timedelta(days=1)
        _, newest_token = stored.start_session(later, policy.sessions)
        rotated = stored.refresh_session(
            parse_token(first_token.value), later + timedelta(minutes=1), policy.sessions
        )
        assert rotated.token is not None
        reset_token = stored.request_password_reset(later, policy.password_reset_lifetime)
        stored.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=later)
        await uow.users.update(stored)
        await uow.commit()

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    # No RefreshTokenIndex: that index is kept empty (persistence.schema).
    assert set(item) == BASE_ATTRIBUTES | {"PasswordReset"}
    assert (item["Version"], item["Revision"]) == ({"N": "2"}, {"N": "2"})
    assert item["FirstName"] == {"S": "Augusta"}
    assert item["UpdatedAt"] == {"S": "2026-11-27T09:30:15.123456+00:00"}
    stored_text = json.dumps(item)
    for issued in (first_token, newest_token, rotated.token, reset_token):
        assert issued.value not in stored_text
        assert issued.value.partition(".")[2] not in stored_text
    sessions = [entry["M"] for entry in item["Sessions"]["L"]]
    assert [s["SessionId"]["S"] for s in sessions] == [
        first.session_id,
        stored.sessions[1].session_id,
    ]
    assert sessions[0]["TokenHash"] == {"S": rotated.token.token_hash}
    assert sessions[0]["PreviousTokenHash"] == {"S": first_token.token_hash}
    assert item["PasswordReset"]["M"]["TokenHash"] == {"S": reset_token.token_hash}
    assert set(item["PasswordReset"]["M"]) == {"TokenHash", "RequestedAt", "ExpiresAt"}


async def test_the_refresh_token_index_stays_empty_and_email_index_holds_keys_only(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    policy = AuthPolicy()
    holder = new_user("holder@example.com")
    holder.start_session(T0, policy.sessions)
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        await uow.users.add(holder)
        await uow.commit()

    async def index_items(index: str) -> list[dict[str, Any]]:
        response = await dynamodb_client.scan(TableName=dynamodb_tables.users, IndexName=index)
        return list(response["Items"])

    # Sparse: no request path reads it, so no sign-in or refresh writes it.
    assert await index_items(REFRESH_TOKEN_INDEX) == []
    assert await index_items(EMAIL_INDEX) == [
        {"Id": {"S": holder.id.value}, "EmailIndex": {"S": "holder@example.com"}}
    ]


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


async def test_the_shadow_of_a_failed_sign_in_reads_and_conditionally_writes_but_changes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        await uow.users.add(new_user())
        await uow.commit()
    before = await dynamodb_client.scan(TableName=dynamodb_tables.users, ConsistentRead=True)
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = dynamodb_client.meta.events
    events.register("before-parameter-build.dynamodb", record)
    try:
        async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
            await uow.users.shadow_failed_login()
    finally:
        events.unregister("before-parameter-build.dynamodb", record)

    after = await dynamodb_client.scan(TableName=dynamodb_tables.users, ConsistentRead=True)
    assert calls == ["GetItem", "PutItem"]
    assert after["Items"] == before["Items"] and after["Count"] == 1
