"""Raw items in DynamoDB: exactly the documented attributes, no clear password, a guard per user."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from domain.policies import AuthPolicy
from domain.secret_tokens import parse_token
from domain.use_cases.accounts import register_user
from domain.use_cases.sessions import SessionTokens, authenticate, refresh_session
from domain.values import Email
from persistence.schema import EMAIL_INDEX, REFRESH_TOKEN_INDEX, TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user, session_tokens
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FixedClock,
    recorded_lock_notices,
    unsent_verification_mailing,
)

CLEAR_PASSWORD = "correct horse battery staple"
BASE_ATTRIBUTES = {
    "Id", "Email", "EmailIndex", "FirstName", "LastName", "PasswordHash", "Status",
    "Version", "Revision", "CreatedAt", "UpdatedAt", "SessionEpoch", "SchemaVersion",
    "EventSeq",
}  # fmt: skip
SESSION_ATTRIBUTES = {
    "UserId", "SessionKey", "SessionId", "TokenHash", "CreatedAt", "ExpiresAt", "LastUsedAt",
    "Amr", "ExpireAt",
}  # fmt: skip


async def raw_sessions(client: Any, tables: TableNames, user_id: str) -> list[dict[str, Any]]:
    response = await client.query(
        TableName=tables.sessions,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user_id}},
        ConsistentRead=True,
    )
    return list(response["Items"])


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
        AuthPolicy(),
        unsent_verification_mailing(),
        email="  Ada.Lovelace@Example.COM ",
        password=CLEAR_PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)

    # Registration mails a verification: it is pending, and counts as security mail.
    assert set(item) == BASE_ATTRIBUTES | {"EmailVerification", "SecurityMailSentAt"}
    assert item["Email"] == {"S": "Ada.Lovelace@Example.COM"}
    assert item["EmailIndex"] == {"S": "ada.lovelace@example.com"}
    assert item["PasswordHash"] == {"S": user.password_hash}
    assert item["Version"] == {"N": "1"}
    assert item["SchemaVersion"] == {"N": "5"}
    assert item["CreatedAt"] == item["UpdatedAt"] == {"S": "2026-11-26T09:30:15.123456+00:00"}
    assert CLEAR_PASSWORD not in json.dumps(item)
    guards = await raw_guards(dynamodb_client, dynamodb_tables)
    assert guards == {("ada.lovelace@example.com", user.id.value)}


async def test_sessions_are_items_of_their_own_holding_only_token_hashes(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    policy, clock = AuthPolicy(), FixedClock(T0)

    def uow() -> DynamoUnitOfWork:
        return DynamoUnitOfWork(dynamodb_client, dynamodb_tables)

    user = await register_user(
        uow(), FakePasswordHasher(), clock, policy, unsent_verification_mailing(),
        email="ada@example.com", password=CLEAR_PASSWORD,
        first_name="Ada", last_name="Lovelace",
    )  # fmt: skip

    async def sign_in() -> SessionTokens:
        return session_tokens(await authenticate(
            uow(), FakePasswordHasher(), FakeAccessTokenIssuer(), clock, policy,
            recorded_lock_notices(), email="ada@example.com", password=CLEAR_PASSWORD,
        ))  # fmt: skip

    first = await sign_in()
    clock.now = T0 + timedelta(days=1)
    newest = await sign_in()
    clock.now += timedelta(minutes=1)
    rotated = await refresh_session(
        uow(), FakeAccessTokenIssuer(), clock, policy, refresh_token=first.refresh_token
    )

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    # No sessions in the user item (the pending verification of registration is).
    assert set(item) == BASE_ATTRIBUTES | {"EmailVerification", "SecurityMailSentAt"}
    assert item["SessionEpoch"] == {"N": "0"}
    assert item["Version"] == {"N": "1"}  # sign-ins and refreshes are no change callers see
    sessions = await raw_sessions(dynamodb_client, dynamodb_tables, user.id.value)
    by_id = {s["SessionId"]["S"]: s for s in sessions}
    assert set(by_id) == {first.session_id, newest.session_id}
    assert set(by_id[newest.session_id]) == SESSION_ATTRIBUTES
    assert set(by_id[first.session_id]) == SESSION_ATTRIBUTES | {
        "PreviousTokenHash", "RotatedAt", "WriteId",  # WriteId: the rotation's single PutItem
    }  # fmt: skip
    refreshed = by_id[first.session_id]
    assert refreshed["SessionKey"] == {"S": f"0000000000#{first.session_id}"}
    assert refreshed["TokenHash"] == {"S": parse_token(rotated.refresh_token).token_hash}
    assert refreshed["PreviousTokenHash"] == {"S": parse_token(first.refresh_token).token_hash}
    idle_end = clock.now + policy.sessions.idle_lifetime
    assert refreshed["ExpireAt"] == {"N": str(int(idle_end.timestamp()))}
    stored_text = json.dumps([item, sessions])
    for issued in (first, newest, rotated):
        assert issued.refresh_token not in stored_text
        assert issued.refresh_token.rpartition(".")[2] not in stored_text


async def test_the_refresh_token_index_stays_empty_and_email_index_holds_keys_only(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    holder = new_user("holder@example.com")
    holder.start_session(T0, AuthPolicy().sessions, [])
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
