"""Sign-in with a second factor against DynamoDB (moto): the challenge lives on the user item as a
hash only, and of concurrent completions of one challenge exactly one wins, against moto and with
TransactionConflict injected by the fault proxy; the loser leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from domain.errors import InvalidSecondFactorCode, InvalidSignInChallenge, VersionConflict
from domain.policies import AuthPolicy
from domain.second_factors import RECOVERY_HASH_BYTES, TotpFactor, issue_recovery_codes
from domain.secret_tokens import hash_token
from domain.use_cases.accounts import register_user
from domain.use_cases.second_factor_sign_in import Proof, ProofKind, complete_sign_in
from domain.use_cases.sessions import SessionTokens, SignInChallenged, authenticate
from domain.values import UserId
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FakeTotpCodes,
    FixedClock,
    recorded_lock_notices,
    unsent_verification_mailing,
)
from tests.fault_proxy import FaultProxy, Outcome
from tests.integration.proxy_client import client_through

PASSWORD = "correct horse battery staple"
CODES = FakeTotpCodes()
STEP = timedelta(seconds=30)
HOLD_SECONDS = 0.1  # each write held in flight, so that racers really meet (as in e2e races)


class World:
    """One user with TOTP and recovery codes, in fresh tables, reached through ``client``."""

    def __init__(self, client: Any, tables: TableNames) -> None:
        self.client, self.tables = client, tables
        self.clock, self.policy = FixedClock(T0 + timedelta(days=1)), AuthPolicy()
        self.recovery: tuple[str, ...] = ()
        self.user_id = ""
        self.proxy: FaultProxy | None = None

    def uow(self) -> DynamoUnitOfWork:
        return DynamoUnitOfWork(self.client, self.tables)

    async def add_user_with_totp(self) -> None:
        user = await register_user(
            self.uow(), FakePasswordHasher(), self.clock, self.policy,
            unsent_verification_mailing(), email="ada@example.com",
            password=PASSWORD, first_name="Ada", last_name="Lovelace",
        )  # fmt: skip
        async with self.uow() as uow:
            stored = await uow.users.require(user.id)
            stored.totp = TotpFactor(CODES.new_secret().sealed, confirmed_at=T0)
            issued = issue_recovery_codes(stored.id.value)
            stored.recovery_code_hashes, self.recovery = issued.hashes, issued.codes
            await uow.users.update(stored)
            await uow.commit()
        self.user_id = user.id.value

    async def challenge(self) -> str:
        outcome = await authenticate(
            self.uow(), FakePasswordHasher(), FakeAccessTokenIssuer(), self.clock, self.policy,
            recorded_lock_notices(), email="ada@example.com", password=PASSWORD,
        )  # fmt: skip
        assert isinstance(outcome, SignInChallenged)
        return outcome.challenge.token

    async def code(self, shift: int = 0) -> str:
        async with self.uow() as uow:
            totp = (await uow.users.require(UserId(self.user_id))).totp
        assert totp is not None
        return CODES.code_at(totp.sealed_secret, self.clock() + shift * STEP)

    async def complete(self, token: str, proof: Proof) -> SessionTokens:
        return await complete_sign_in(
            self.uow(), FakeAccessTokenIssuer(), self.clock, self.policy,
            recorded_lock_notices(), CODES, challenge_token=token, proof=proof,
        )  # fmt: skip

    async def user_item(self) -> dict[str, Any]:
        response = await self.client.get_item(
            TableName=self.tables.users, Key={"Id": {"S": self.user_id}}, ConsistentRead=True
        )
        item: dict[str, Any] = response["Item"]
        return item

    async def session_items(self) -> list[dict[str, Any]]:
        response = await self.client.query(
            TableName=self.tables.sessions,
            KeyConditionExpression="UserId = :id",
            ExpressionAttributeValues={":id": {"S": self.user_id}},
            ConsistentRead=True,
        )
        items: list[dict[str, Any]] = response["Items"]
        return items


@pytest_asyncio.fixture(params=["moto", "conflicts-injected"])
async def world(
    request: pytest.FixtureRequest,
    dynamodb_client: Any,
    dynamodb_tables: TableNames,
    proxy: FaultProxy,
) -> AsyncIterator[World]:
    """The world straight on moto, or through the proxy refusing writes that meet another."""
    if request.param == "moto":
        world = World(dynamodb_client, dynamodb_tables)
        await world.add_user_with_totp()
        yield world
        return
    async with client_through(proxy, max_attempts=3) as client:
        world = World(client, dynamodb_tables)
        await world.add_user_with_totp()
        proxy.conflict(contended_only=True, hold_writes=HOLD_SECONDS)
        world.proxy = proxy
        yield world


async def test_the_challenge_is_stored_as_a_hash_on_the_user_item(world: World) -> None:
    token = await world.challenge()

    item = await world.user_item()

    (stored,) = item["SignInChallenges"]["L"]
    assert set(stored["M"]) == {"TokenHash", "ExpiresAt", "WebAuthn"}
    assert bytes(stored["M"]["TokenHash"]["B"]).hex() == hash_token(token)
    assert token not in json.dumps(item, default=str)
    assert token.split(".")[1] not in json.dumps(item, default=str)
    assert await world.session_items() == []


async def test_of_concurrent_completions_of_one_challenge_exactly_one_wins(world: World) -> None:
    token = await world.challenge()
    proofs = [Proof(ProofKind.TOTP_CODE, await world.code(shift)) for shift in (-1, 0, 1)]
    proofs.append(Proof(ProofKind.RECOVERY_CODE, world.recovery[0]))

    async with asyncio.timeout(120):
        results = await asyncio.gather(
            *(world.complete(token, proof) for proof in proofs), return_exceptions=True
        )

    won = [r for r in results if isinstance(r, SessionTokens)]
    lost = [r for r in results if not isinstance(r, SessionTokens)]
    assert len(won) == 1, results
    # A loser finds the challenge spent; with conflicts injected it may instead have met
    # concurrent writes on every attempt (ABORTED): never a second session.
    assert all(isinstance(r, InvalidSignInChallenge | VersionConflict) for r in lost), lost
    sessions = await world.session_items()
    assert [s["SessionId"]["S"] for s in sessions] == [won[0].session_id]
    assert sessions[0]["Amr"] == {"L": [{"S": "pwd"}, {"S": "otp"}]}
    item = await world.user_item()
    assert "SignInChallenges" not in item
    spent_recovery = len(item["RecoveryCodes"]["B"]) == 9 * RECOVERY_HASH_BYTES
    used_totp = "LastStep" in item["Totp"]["M"]
    assert spent_recovery != used_totp, "exactly the winner's proof is spent"
    if world.proxy is not None:
        assert any(r.outcome is Outcome.CONFLICTED for r in world.proxy.requests())


async def test_a_wrong_code_is_counted_on_the_item_and_the_challenge_dies_at_the_limit(
    world: World,
) -> None:
    token = await world.challenge()
    right = await world.code()
    wrong = "000000" if right != "000000" else "111111"
    for expected_wrong in (1, 2):
        with pytest.raises(InvalidSecondFactorCode):
            await world.complete(token, Proof(ProofKind.TOTP_CODE, wrong))
        item = await world.user_item()
        (stored,) = item["SignInChallenges"]["L"]
        assert stored["M"]["WrongCodes"] == {"N": str(expected_wrong)}
        assert item["FailedLogins"] == {"N": str(expected_wrong)}
    with pytest.raises(InvalidSecondFactorCode):
        await world.complete(token, Proof(ProofKind.TOTP_CODE, wrong))

    item = await world.user_item()
    assert "SignInChallenges" not in item and item["FailedLogins"] == {"N": "3"}
    with pytest.raises(InvalidSignInChallenge):
        await world.complete(token, Proof(ProofKind.TOTP_CODE, right))
