"""Under 30% DynamoDB throttling a mixed workload gets retryable statuses; tables stay sound."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.harness import Service
from tests.fault_proxy import FaultProxy, Outcome

if TYPE_CHECKING:
    from tests.e2e.conftest import ServeThroughProxy

ACCOUNTS = 24
CONCURRENCY = 12
THROTTLED_FRACTION = 0.3
# botocore tries each DynamoDB call this many times: at 30% throttling, about one call in eleven
# stays throttled through its retries, so some RPCs do answer UNAVAILABLE.
DYNAMODB_MAX_ATTEMPTS = 2
# The workload's own retries of an RPC answered UNAVAILABLE.
CLIENT_ATTEMPTS = 6
# A generous bound per RPC: a stuck RPC fails the test (DEADLINE_EXCEEDED is unexpected).
RPC_TIMEOUT_SECONDS = 20.0
PASSWORD = "correct horse battery"

Code: TypeAlias = grpc.StatusCode
Reply = Any  # a reply message, or the grpc.aio.AioRpcError the RPC failed with


def failed(reply: Reply) -> bool:
    return isinstance(reply, grpc.aio.AioRpcError)


def has_retry_info(error: grpc.aio.AioRpcError) -> bool:
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    return status is not None and any(
        detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details
    )


@dataclass
class Workload:
    """Makes the RPCs, counts their statuses, and notes every status the workload did not expect.

    The proxy answers a throttled call itself and never forwards it, so an RPC that ends
    UNAVAILABLE has written nothing: retrying it must not meet its own earlier attempt (no
    ALREADY_EXISTS, ABORTED or NOT_FOUND on a retry).
    """

    stub: Any
    statuses: Counter[tuple[str, Code]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    async def call(
        self, method: str, request: Any, *, expected: frozenset[Code] = frozenset()
    ) -> Reply:
        """One RPC; a status but OK, UNAVAILABLE (with RetryInfo) or ``expected`` is a problem."""
        try:
            reply = await getattr(self.stub, method)(request, timeout=RPC_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            self.statuses[method, code] += 1
            if code is Code.UNAVAILABLE and not has_retry_info(error):
                self.problems.append(f"{method}: UNAVAILABLE without RetryInfo")
            elif code is not Code.UNAVAILABLE and code not in expected:
                self.problems.append(f"{method}: {code.name} {error.details()}")
            return error
        self.statuses[method, Code.OK] += 1
        return reply

    async def retried(self, method: str, request: Any, **kwargs: Any) -> Reply:
        """The RPC, made again while it answers UNAVAILABLE (a few times)."""
        for _ in range(CLIENT_ATTEMPTS):
            reply = await self.call(method, request, **kwargs)
            if not (failed(reply) and reply.code() is Code.UNAVAILABLE):
                break
            await asyncio.sleep(0.05)
        return reply

    def count(self, code: Code) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status is code)


@dataclass
class Account:
    """One user's life in the workload, as its replies told it."""

    email: str
    deletes: bool
    user_id: str = ""
    names: tuple[str, str] = ("", "")
    versions: list[int] = field(default_factory=list)  # from successful replies, in order
    refresh_tokens: list[str] = field(default_factory=list)  # the latest of each session
    deleted: bool = False

    @property
    def version(self) -> int:
        return self.versions[-1]

    def updated(self, reply: pb.User, names: tuple[str, str], problems: list[str]) -> None:
        if reply.version <= self.version:
            problems.append(f"{self.email}: version {reply.version} after {self.version}")
        self.versions.append(reply.version)
        self.names = names


async def live(workload: Workload, account: Account) -> None:
    """Register, sign in twice, refresh (also racing), update (also racing), maybe delete."""
    names = ("Ada", "Lovelace")
    registered = await workload.retried(
        "RegisterUser",
        pb.RegisterUserRequest(
            email=account.email, password=PASSWORD, first_name=names[0], last_name=names[1]
        ),
    )
    if failed(registered):
        return
    account.user_id, account.names, account.versions = registered.id, names, [registered.version]

    for _ in range(2):
        signed_in = await workload.retried(
            "Authenticate", pb.AuthenticateRequest(email=account.email, password=PASSWORD)
        )
        if not failed(signed_in):
            account.refresh_tokens.append(signed_in.refresh_token)

    tokens = account.refresh_tokens
    if tokens:
        for _ in range(2):
            refreshed = await workload.retried(
                "RefreshSession", pb.RefreshSessionRequest(refresh_token=tokens[0])
            )
            if not failed(refreshed):
                tokens[0] = refreshed.refresh_token
    if len(tokens) > 1:
        # Two tabs refreshing one session at once: at most one wins, the other gets ABORTED.
        racing = pb.RefreshSessionRequest(refresh_token=tokens[1])
        outcomes = await asyncio.gather(
            *(
                workload.call("RefreshSession", racing, expected=frozenset({Code.ABORTED}))
                for _ in range(2)
            )
        )
        winners = [outcome for outcome in outcomes if not failed(outcome)]
        if len(winners) > 1:
            workload.problems.append(f"{account.email}: both racing refreshes won")
        if winners:
            tokens[1] = winners[0].refresh_token

    for step in range(3):
        new = (f"Ada{step}", f"Lovelace{step}")
        update = pb.UpdateProfileRequest(
            id=account.user_id,
            first_name=new[0],
            last_name=new[1],
            expected_version=account.version,
        )
        reply = await workload.retried("UpdateProfile", update)
        if not failed(reply):
            account.updated(reply, new, workload.problems)

    # Two updates from the same read: at most one wins, the other gets ABORTED.
    contenders = [(f"Race{i}", "Winner") for i in range(2)]
    outcomes = await asyncio.gather(
        *(
            workload.call(
                "UpdateProfile",
                pb.UpdateProfileRequest(
                    id=account.user_id,
                    first_name=first,
                    last_name=last,
                    expected_version=account.version,
                ),
                expected=frozenset({Code.ABORTED}),
            )
            for first, last in contenders
        )
    )
    winners = [(o, n) for o, n in zip(outcomes, contenders, strict=True) if not failed(o)]
    if len(winners) > 1:
        workload.problems.append(f"{account.email}: both racing updates won")
    for reply, new in winners:
        account.updated(reply, new, workload.problems)

    if account.deletes:
        deleted = await workload.retried(
            "DeleteUser", pb.DeleteUserRequest(id=account.user_id, expected_version=account.version)
        )
        if failed(deleted):
            return
        account.deleted = True
        for token in tokens:
            refreshed = await workload.retried(
                "RefreshSession",
                pb.RefreshSessionRequest(refresh_token=token),
                expected=frozenset({Code.UNAUTHENTICATED}),
            )
            if not failed(refreshed):
                workload.problems.append(f"{account.email}: a deleted user's session refreshed")
    else:
        read = await workload.retried("GetUser", pb.GetUserRequest(id=account.user_id))
        if not failed(read) and read.version != account.version:
            workload.problems.append(f"{account.email}: read {read.version}, not {account.version}")


async def check_tables(service: Service, accounts: list[Account]) -> None:
    """Every user has its guard and every guard its user; deleted users are gone; versions hold."""
    users = {item["Id"]["S"]: item for item in await service.scan(service.tables.users)}
    guards = {item["Email"]["S"]: item for item in await service.scan(service.tables.emails)}
    for user_id, item in users.items():
        guard = guards.get(item["EmailIndex"]["S"])
        assert guard is not None and guard["UserId"]["S"] == user_id, f"user {user_id} unguarded"
    for email, guard in guards.items():
        user = users.get(guard["UserId"]["S"])
        assert user is not None and user["EmailIndex"]["S"] == email, f"guard {email} orphaned"

    alive = [a for a in accounts if a.user_id and not a.deleted]
    assert sorted(users) == sorted(a.user_id for a in alive)
    for account in alive:
        item = users[account.user_id]
        assert int(item["Version"]["N"]) == account.version, account.email
        assert (item["FirstName"]["S"], item["LastName"]["S"]) == account.names, account.email
        assert account.versions == sorted(set(account.versions)), account.versions


@pytest.mark.slow
async def test_a_mixed_workload_under_30_percent_throttling_answers_retryably_and_stays_consistent(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    rng = random.Random(4)
    accounts = [
        Account(email=f"user{i}.{rng.randrange(10**6)}@example.com", deletes=i % 2 == 0)
        for i in range(ACCOUNTS)
    ]
    # The tables are created through the proxy too: throttling starts once they exist.
    async with serve_through_proxy(
        dynamodb_max_attempts=DYNAMODB_MAX_ATTEMPTS, health_check_interval_seconds=2.0
    ) as service:
        workload = Workload(service.stub)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(account: Account) -> None:
            async with gate:
                await live(workload, account)

        fault_proxy.throttle(THROTTLED_FRACTION, seed=2026)
        await asyncio.gather(*(one(account) for account in accounts))
        fault_proxy.pass_through()

        assert workload.problems == []
        throttled = [r for r in fault_proxy.requests() if r.outcome is Outcome.THROTTLED]
        assert len(throttled) > 50, len(throttled)
        assert workload.count(Code.UNAVAILABLE) > 0, workload.statuses
        assert workload.count(Code.OK) > 200, workload.statuses
        assert sum(workload.statuses.values()) >= 300, workload.statuses

        await check_tables(service, accounts)
        for account in accounts:
            for token in account.refresh_tokens:
                request = pb.RefreshSessionRequest(refresh_token=token)
                if account.deleted:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await service.stub.RefreshSession(request)
                    assert refused.value.code() is Code.UNAUTHENTICATED
                elif account.user_id:
                    await service.stub.RefreshSession(request)  # the session survived
