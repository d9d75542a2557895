"""Email verification against DynamoDB (moto): the pending verification's map on the user item,
verifying by link and by code, and wrong codes counted in conditional writes, even at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from domain.errors import (
    InvalidVerificationCode,
    InvalidVerificationToken,
    VerificationCodeAttemptsExhausted,
    VersionConflict,
)
from domain.policies import AuthPolicy
from domain.ports import VerificationMail, VerificationMailing
from domain.secret_tokens import hash_token
from domain.use_cases.accounts import register_user
from domain.use_cases.verification import verify_email
from domain.user import User
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0
from tests.fakes import DeferredTasks, FakePasswordHasher, FixedClock, RecordingNotifier

POLICY = AuthPolicy()
EMAIL = "ada.lovelace@example.com"


async def raw_user(client: Any, tables: TableNames, user_id: str) -> dict[str, Any]:
    key = {"Id": {"S": user_id}}
    response = await client.get_item(TableName=tables.users, Key=key, ConsistentRead=True)
    return dict(response["Item"])


async def registered(client: Any, tables: TableNames) -> tuple[User, VerificationMail]:
    notifier, later = RecordingNotifier(), DeferredTasks()
    user = await register_user(
        DynamoUnitOfWork(client, tables),
        FakePasswordHasher(),
        FixedClock(T0),
        POLICY,
        VerificationMailing(notifier, later),
        email=EMAIL,
        password="correct horse battery staple",
        first_name="Ada",
        last_name="Lovelace",
    )
    await later.run_all()
    (mail,) = notifier.verifications
    return user, mail


async def verify(client: Any, tables: TableNames, **presented: str) -> User:
    fields = {"token": "", "email": "", "code": "", **presented}
    return await verify_email(
        DynamoUnitOfWork(client, tables), FixedClock(T0), POLICY.verification, **fields
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def test_the_pending_verification_is_a_map_of_hashes_on_the_user_item(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, mail = await registered(dynamodb_client, dynamodb_tables)

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)

    stored = item["EmailVerification"]["M"]
    assert stored["Email"] == {"S": EMAIL}
    assert stored["TokenHash"] == {"S": hash_token(mail.token)}
    assert stored["WrongCodes"] == {"N": "0"}
    assert item["SchemaVersion"] == {"N": "5"}
    text = json.dumps(item)
    assert mail.token not in text
    assert f'"{mail.code}"' not in text  # never as a value of its own


async def test_the_link_verifies_and_clears_the_pending_verification_in_the_store(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, mail = await registered(dynamodb_client, dynamodb_tables)

    verified = await verify(dynamodb_client, dynamodb_tables, token=mail.token)

    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert verified.version == 2 and item["Version"] == {"N": "2"}
    assert item["EmailVerified"] == {"BOOL": True}
    assert "EmailVerification" not in item
    try:
        await verify(dynamodb_client, dynamodb_tables, token=mail.token)
    except InvalidVerificationToken:
        pass
    else:
        raise AssertionError("a used link verified again")


async def test_concurrent_wrong_codes_are_each_counted_and_never_get_past_the_limit(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, mail = await registered(dynamodb_client, dynamodb_tables)
    limit = POLICY.verification.max_code_attempts

    results = await asyncio.gather(
        *(
            verify(dynamodb_client, dynamodb_tables, email=EMAIL, code=wrong(mail.code))
            for _ in range(20)
        ),
        return_exceptions=True,
    )

    told_wrong = sum(
        isinstance(result, InvalidVerificationCode)
        and not isinstance(result, VerificationCodeAttemptsExhausted)
        for result in results
    )
    assert told_wrong <= limit
    allowed = (InvalidVerificationCode, VerificationCodeAttemptsExhausted, VersionConflict)
    assert all(isinstance(result, allowed) for result in results), results
    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert item["EmailVerification"]["M"]["WrongCodes"] == {"N": str(limit)}
    try:
        await verify(dynamodb_client, dynamodb_tables, email=EMAIL, code=mail.code)
    except VerificationCodeAttemptsExhausted:
        pass
    else:
        raise AssertionError("the right code worked after the limit")
    assert (await verify(dynamodb_client, dynamodb_tables, token=mail.token)).email_verified
