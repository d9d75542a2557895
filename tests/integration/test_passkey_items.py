"""Passkeys against DynamoDB (moto): a registration under way, the passkey and a spent sign-in
challenge as the user item stores them, read back whole, and a replayed ceremony refused by the
conditional write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from domain.errors import PasskeyCeremonyFailed
from domain.passkeys import SignInCeremonyCodec, challenge_digest
from domain.policies import AuthPolicy
from domain.use_cases import passkeys
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from server.crypto.webauthn_relying_party import PyWebAuthnRelyingParty
from tests.builders import T0, new_user
from tests.fakes import DeferredTasks, FakeAccessTokenIssuer, FixedClock, RecordingNotifier
from tests.webauthn_authenticator import SoftAuthenticator

RELYING_PARTY = PyWebAuthnRelyingParty(
    rp_id="localhost", rp_name="Biome", origins=["http://localhost:8080"]
)
CEREMONIES = SignInCeremonyCodec(b"k" * 32)


async def raw_user(client: Any, tables: TableNames, user_id: str) -> dict[str, Any]:
    key = {"Id": {"S": user_id}}
    response = await client.get_item(TableName=tables.users, Key=key, ConsistentRead=True)
    return dict(response["Item"])


async def test_a_passkey_its_ceremonies_and_a_spent_challenge_are_stored_and_read_back(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    def uow() -> DynamoUnitOfWork:
        return DynamoUnitOfWork(dynamodb_client, dynamodb_tables)

    clock, browser = FixedClock(T0), SoftAuthenticator()
    user = new_user()
    async with uow() as unit:
        await unit.users.add(user)
        await unit.commit()
    begun = await passkeys.begin_passkey_registration(
        uow(), RELYING_PARTY, clock, user_id=user.id.value
    )
    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert set(item["PasskeyRegistration"]["M"]) == {"Challenge", "ExpiresAt"}

    notifier, after_reply = RecordingNotifier(), DeferredTasks()
    passkey = await passkeys.finish_passkey_registration(
        uow(),
        RELYING_PARTY,
        clock,
        notifier,
        after_reply,
        user_id=user.id.value,
        credential_json=json.dumps(browser.create(begun.options_json)),
        name="Laptop",
    )
    await after_reply.run_all()  # the owner's notice, mailed after the reply
    assert [notice.added for notice in notifier.second_factor_notices] == [True]
    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert "PasskeyRegistration" not in item
    [stored] = item["Passkeys"]["L"]
    assert stored["M"]["Id"] == {"S": passkey.passkey_id}
    assert stored["M"]["SignCount"] == {"N": "0"}
    assert item["SchemaVersion"] == {"N": "5"}

    sign_in = passkeys.begin_passkey_sign_in(RELYING_PARTY, CEREMONIES, clock)
    assertion = json.dumps(browser.get(sign_in.options_json))

    async def finish() -> object:
        return await passkeys.finish_passkey_sign_in(
            uow(),
            RELYING_PARTY,
            CEREMONIES,
            FakeAccessTokenIssuer(),
            clock,
            AuthPolicy(),
            ceremony_token=sign_in.ceremony_token,
            credential_json=assertion,
        )

    await finish()
    item = await raw_user(dynamodb_client, dynamodb_tables, user.id.value)
    assert item["Passkeys"]["L"][0]["M"]["SignCount"] == {"N": "1"}
    assert "LastUsedAt" in item["Passkeys"]["L"][0]["M"]
    assert list(item["PasskeySignIns"]["M"]) == [
        challenge_digest(CEREMONIES.open(sign_in.ceremony_token, T0).challenge)  # type: ignore[union-attr]
    ]
    async with uow() as unit:
        read = await unit.users.require(user.id)
    assert read.passkeys[0].sign_count == 1 and read.passkeys[0].name == "Laptop"

    with pytest.raises(PasskeyCeremonyFailed):  # the same assertion again
        await finish()
