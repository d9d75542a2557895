"""How a sign-in was proven (amr) lives on the session item against DynamoDB (moto): a refreshed
access token carries the sign-in's amr, and a session item stored before amr existed still
refreshes, as a password sign-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.policies import AuthPolicy
from domain.use_cases.accounts import register_user
from domain.use_cases.sessions import authenticate, refresh_session
from domain.values import AMR_PASSWORD_AND_OTP, UserId
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, session_tokens
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FixedClock,
    recorded_lock_notices,
    unsent_verification_mailing,
)

PASSWORD = "correct horse battery staple"


async def _register(client: Any, tables: TableNames, clock: FixedClock) -> str:
    user = await register_user(
        DynamoUnitOfWork(client, tables), FakePasswordHasher(), clock, AuthPolicy(),
        unsent_verification_mailing(), email="ada@example.com",
        password=PASSWORD, first_name="Ada", last_name="Lovelace",
    )  # fmt: skip
    return user.id.value


async def test_a_refreshed_token_carries_the_amr_of_the_sign_in(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    clock, policy = FixedClock(T0), AuthPolicy()
    user_id = await _register(dynamodb_client, dynamodb_tables, clock)
    uow = DynamoUnitOfWork(dynamodb_client, dynamodb_tables)
    async with uow:  # a session opened as a second-factor sign-in opens it
        user = await uow.users.require(UserId(user_id))
        start = user.start_session(clock(), policy.sessions, [], amr=AMR_PASSWORD_AND_OTP)
        await uow.users.update(user)
        await uow.sessions.add(user, start.session)
        await uow.commit()
    issuer = FakeAccessTokenIssuer()
    clock.now += timedelta(minutes=5)

    first = await refresh_session(uow, issuer, clock, policy, refresh_token=start.token.value)
    await refresh_session(uow, issuer, clock, policy, refresh_token=first.refresh_token)

    assert issuer.amr_claims == [("pwd", "otp"), ("pwd", "otp")]


async def test_a_session_item_stored_before_amr_still_refreshes_as_a_password_sign_in(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    clock, policy = FixedClock(T0), AuthPolicy()
    user_id = await _register(dynamodb_client, dynamodb_tables, clock)
    uow = DynamoUnitOfWork(dynamodb_client, dynamodb_tables)
    signed_in = session_tokens(await authenticate(
        uow, FakePasswordHasher(), FakeAccessTokenIssuer(), clock, policy,
        recorded_lock_notices(), email="ada@example.com", password=PASSWORD,
    ))  # fmt: skip
    items = await dynamodb_client.query(
        TableName=dynamodb_tables.sessions,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user_id}},
        ConsistentRead=True,
    )
    (item,) = items["Items"]
    assert item["Amr"] == {"L": [{"S": "pwd"}]}
    del item["Amr"]  # as a replica of the earlier version wrote it
    await dynamodb_client.put_item(TableName=dynamodb_tables.sessions, Item=item)
    issuer = FakeAccessTokenIssuer()

    refreshed = await refresh_session(
        uow, issuer, clock, policy, refresh_token=signed_in.refresh_token
    )

    assert refreshed.session_id == signed_in.session_id
    assert issuer.amr_claims == [("pwd",)]
