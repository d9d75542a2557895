"""Concurrent uses of one recovery code against moto_server, as the use cases spend it (read,
spend, conditional write, retried on conflict): exactly one wins; also with every write that
meets another refused with TransactionConflict, as real DynamoDB does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import (
    ConcurrentWrite,
    InvalidSecondFactorCode,
    TotpNotEnabled,
    VersionConflict,
)
from domain.events import RecoveryCodeUsed, SecondFactorRemoved
from domain.policies import AuthPolicy
from domain.ports import LockNotices, SecondFactorNotices
from domain.second_factors import TotpFactor, issue_recovery_codes
from domain.use_cases import second_factors
from domain.use_cases.retry import retry_on_conflict
from domain.values import UserId
from persistence.event_store import DynamoEventStore
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import new_user
from tests.fakes import DeferredTasks, FakeTotpCodes, RecordingNotifier
from tests.fault_proxy import FaultProxy
from tests.integration.proxy_client import client_through

CONTENDERS = 8
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


async def seeded(client: Any, tables: TableNames) -> tuple[UserId, tuple[str, ...]]:
    """A stored user with TOTP on and ten recovery codes; its id and the codes."""
    user = new_user()
    user.totp = TotpFactor(FakeTotpCodes().new_secret().sealed, confirmed_at=NOW)
    issued = issue_recovery_codes(user.id.value)
    user.recovery_code_hashes = issued.hashes
    async with DynamoUnitOfWork(client, tables) as uow:
        await uow.users.add(user)
        await uow.commit()
    return user.id, issued.codes


async def spend(client: Any, tables: TableNames, user_id: UserId, code: str) -> None:
    uow = DynamoUnitOfWork(client, tables)

    async def apply(attempt: int) -> None:
        async with uow:
            user = await uow.users.require(user_id)
            user.use_recovery_code(code, NOW)
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(apply)


async def stored_state(client: Any, tables: TableNames, user_id: UserId) -> tuple[int, list[Any]]:
    async with DynamoUnitOfWork(client, tables) as uow:
        user = await uow.users.require(user_id)
    events = await DynamoEventStore(client, tables).user_events(
        user_id, after_sequence=0, limit=100
    )
    return user.recovery_codes_remaining, [recorded.event for recorded in events]


async def race_one_code(client: Any, tables: TableNames) -> list[BaseException | None]:
    user_id, codes = await seeded(client, tables)
    outcomes = await asyncio.gather(
        *(spend(client, tables, user_id, codes[0]) for _ in range(CONTENDERS)),
        return_exceptions=True,
    )
    remaining, events = await stored_state(client, tables, user_id)
    assert outcomes.count(None) == 1, outcomes
    assert remaining == 9
    assert [e for e in events if isinstance(e, RecoveryCodeUsed)] == [
        RecoveryCodeUsed(user_id.value, NOW, remaining=9)
    ]
    return outcomes


async def test_of_concurrent_spends_of_one_recovery_code_exactly_one_wins(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    outcomes = await race_one_code(dynamodb_client, dynamodb_tables)

    losers = [outcome for outcome in outcomes if outcome is not None]
    # moto applies one write at a time: a loser's write fails its revision check, it reads again
    # and finds the code spent.
    assert all(isinstance(error, InvalidSecondFactorCode) for error in losers), losers


async def test_with_conflicts_injected_still_exactly_one_spend_of_a_code_wins(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    proxy.conflict(contended_only=True, hold_writes=0.1)
    async with client_through(proxy, max_attempts=3) as client:
        outcomes = await race_one_code(client, dynamodb_tables)

    losers = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(error, (InvalidSecondFactorCode, VersionConflict)) for error in losers)
    assert any(record.outcome.name == "CONFLICTED" for record in proxy.requests()), (
        "no write met another: the race did not happen"
    )


@pytest.mark.parametrize("through_proxy", [False, True])
async def test_concurrent_disables_with_one_recovery_code_turn_totp_off_once(
    proxy: FaultProxy, dynamodb_client: Any, dynamodb_tables: TableNames, through_proxy: bool
) -> None:
    if through_proxy:
        proxy.conflict(contended_only=True, hold_writes=0.1)
    later = DeferredTasks()
    notifier = RecordingNotifier()
    deps = second_factors.SecondFactorDeps(
        codes=FakeTotpCodes(),
        lock_notices=LockNotices(notifier, later),
        notices=SecondFactorNotices(notifier, later),
    )
    async with client_through(proxy, max_attempts=3) as client:
        client = client if through_proxy else dynamodb_client
        user_id, codes = await seeded(client, dynamodb_tables)
        outcomes = await asyncio.gather(
            *(
                second_factors.disable_totp(
                    DynamoUnitOfWork(client, dynamodb_tables),
                    lambda: NOW,
                    AuthPolicy(),
                    deps,
                    user_id=user_id.value,
                    recovery_code=codes[3],
                )
                for _ in range(CONTENDERS)
            ),
            return_exceptions=True,
        )
        _, events = await stored_state(client, dynamodb_tables, user_id)
    await later.run_all()

    wins = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(wins) == 1, outcomes
    assert all(
        isinstance(error, (TotpNotEnabled, InvalidSecondFactorCode, ConcurrentWrite))
        for error in losers
    ), losers
    assert [type(e) for e in events if isinstance(e, (RecoveryCodeUsed, SecondFactorRemoved))] == [
        RecoveryCodeUsed,
        SecondFactorRemoved,
    ]
    assert len(notifier.second_factor_notices) == 1
