"""Racing clients over several real gRPC channels: one winner per race, tables that hold up.

Every race runs twice: on moto as it is, and through the fault proxy refusing each write that
meets another in flight on one item with TransactionConflict, as real DynamoDB does (moto applies
one request at a time and never does). There a loser may also end ABORTED because it met
concurrent writes on every attempt (ConcurrentWrite); what the README promises still holds."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from uuid import uuid4

import grpc
import pyotp
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from domain.errors import (
    ConcurrentRefresh,
    ConcurrentWrite,
    EmailAlreadyRegistered,
    InvalidSignInChallenge,
    StaleVersion,
)
from domain.second_factors import RECOVERY_HASH_BYTES
from domain.values import Email
from tests.e2e.auth_helpers import PASSWORD, register, sign_in, token_hash, verify_access_token
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, service_settings
from tests.fault_proxy import FaultProxy, Outcome
from tests.smtp_server import CapturingSmtpServer, reset_token_from

Code = grpc.StatusCode
TIMEOUT = 60  # seconds per RPC: generous, as a couple of shared cores serve every racer
RACE_SECONDS = 180  # a whole race: a stall fails the test with a traceback instead of hanging it
CHANNELS = 4  # separate connections, so the racing requests really interleave at the server
REUSE_GRACE_SECONDS = 10  # the default refresh_token_reuse_grace_seconds
# With conflicts injected, each write is held this long before it reaches moto, its items in
# flight and its change unseen by reads (as a real transaction in flight), so racers really meet.
HOLD_SECONDS = 0.1
CONFLICT = str(ConcurrentWrite())


@dataclass(frozen=True)
class Backend:
    """What the racing service writes to: moto, or moto behind a proxy injecting conflicts."""

    proxy: FaultProxy | None

    @property
    def conflicts_injected(self) -> bool:
        return self.proxy is not None

    def refused(self) -> int:
        """How many writes the proxy refused with TransactionConflict so far."""
        records = self.proxy.requests() if self.proxy is not None else []
        return sum(record.outcome is Outcome.CONFLICTED for record in records)

    def lost_to(self, *expected: str) -> set[str]:
        """The messages a race's losers may get: ``expected``, and with conflicts injected the
        ConcurrentWrite of a loser that met concurrent writes on every attempt."""
        return {*expected, CONFLICT} if self.conflicts_injected else set(expected)


@pytest.fixture(params=["moto", "conflicts-injected"])
def backend(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator[Backend]:
    if request.param == "moto":
        yield Backend(None)
        return
    with FaultProxy(moto_endpoint) as proxy:
        proxy.conflict(contended_only=True, hold_writes=HOLD_SECONDS)
        yield Backend(proxy)


@pytest_asyncio.fixture
async def service(
    backend: Backend, moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> AsyncIterator[Service]:
    """The service over ``backend``: moto itself, or the proxy in front of it."""
    endpoint = backend.proxy.url if backend.proxy is not None else moto_endpoint
    settings = service_settings(endpoint, smtp_server)
    async with serving(settings, smtp_server) as running:
        yield running


T = TypeVar("T")
Stubs = Sequence["user_service_pb2_grpc.UserServiceAsyncStub"]  # the async stub is in the .pyi only


@asynccontextmanager
async def racing_stubs(service: Service, count: int = CHANNELS) -> AsyncIterator[Stubs]:
    """Stubs over ``count`` channels, each with its own TCP connection (no shared subchannel)."""
    async with AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(
                grpc.aio.insecure_channel(
                    service.target, options=[("grpc.use_local_subchannel_pool", 1)]
                )
            )
            for _ in range(count)
        ]
        yield [user_service_pb2_grpc.UserServiceStub(channel) for channel in channels]


async def race(contenders: Iterable[Awaitable[T]]) -> list[T]:
    """Run every contender at once; their results in order."""
    async with asyncio.timeout(RACE_SECONDS):
        return list(await asyncio.gather(*contenders))


async def outcome(call: Awaitable[Any]) -> tuple[Code, Any]:
    """(OK, reply) or (the status code, the error) of one RPC; anything else fails the test."""
    try:
        return Code.OK, await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error


def codes(outcomes: Sequence[tuple[Code, Any]]) -> Counter[Code]:
    return Counter(code for code, _ in outcomes)


def winners(outcomes: Sequence[tuple[Code, Any]]) -> list[Any]:
    return [reply for code, reply in outcomes if code is Code.OK]


async def user_items(service: Service) -> dict[str, dict[str, Any]]:
    """Every item of the users table, read raw, by id."""
    return {item["Id"]["S"]: item for item in await service.scan(service.tables.users)}


async def guard_items(service: Service) -> dict[str, str]:
    """Every item of the email-guard table, read raw: normalized email -> owner's id."""
    return {
        item["Email"]["S"]: item["UserId"]["S"]
        for item in await service.scan(service.tables.emails)
    }


def mixed_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


# --- registration --------------------------------------------------------------------------------

REGISTRANTS = 100


@pytest.mark.slow
async def test_a_hundred_concurrent_registrations_of_one_email_in_mixed_case_create_one_user(
    service: Service, backend: Backend
) -> None:
    rng = random.Random(20261126)
    address = f"grace.hopper-{uuid4().hex[:8]}@example.com"
    spellings = [address.upper(), address, *(mixed_case(address, rng) for _ in range(98))]
    requests = [
        pb.RegisterUserRequest(
            email=f" {email} " if i % 7 == 0 else email,  # stripped: still the same address
            password=f"racing-password-{i:03d}",
            first_name=f"Grace{i}",
            last_name=f"Hopper{i}",
        )
        for i, email in enumerate(spellings)
    ]
    assert len(requests) == REGISTRANTS

    async with racing_stubs(service) as stubs:
        outcomes = await race(
            (
                outcome(stubs[i % len(stubs)].RegisterUser(request, timeout=TIMEOUT))
                for i, request in enumerate(requests)
            )
        )

    assert codes(outcomes)[Code.OK] == 1, codes(outcomes)
    assert codes(outcomes)[Code.ALREADY_EXISTS] + codes(outcomes)[Code.ABORTED] == REGISTRANTS - 1
    # A loser is told the address is taken; with conflicts it may instead have met concurrent
    # writes on every attempt (ABORTED, retry): never INTERNAL, never a wrong ALREADY_EXISTS.
    assert {error.details() for code, error in outcomes if code is Code.ALREADY_EXISTS} == {
        str(EmailAlreadyRegistered())
    }
    aborted = {error.details() for code, error in outcomes if code is Code.ABORTED}
    assert aborted <= backend.lost_to() and (codes(outcomes)[Code.ABORTED] == 0 or aborted)
    assert (backend.refused() > 0) is backend.conflicts_injected
    [user] = winners(outcomes)
    [won] = [
        request for request, (code, _) in zip(requests, outcomes, strict=True) if code is Code.OK
    ]
    assert (user.email, user.first_name, user.last_name) == (
        won.email.strip(),
        won.first_name,
        won.last_name,
    )
    # The tables hold the winner's user item and its guard, nothing of any loser.
    stored = await user_items(service)
    assert list(stored) == [user.id]
    item = stored[user.id]
    assert (item["Email"]["S"], item["FirstName"]["S"], item["Version"]["N"]) == (
        won.email.strip(),
        won.first_name,
        "1",
    )
    assert await guard_items(service) == {Email.parse(address).normalized: user.id}
    # And the stored password hash is the winner's: a loser's password does not sign in.
    loser = next(request for request in requests if request.password != won.password)
    assert (await sign_in(service, address, won.password)).user.id == user.id
    wrong = await outcome(
        service.stub.Authenticate(
            pb.AuthenticateRequest(email=address, password=loser.password), timeout=TIMEOUT
        )
    )
    assert wrong[0] is Code.UNAUTHENTICATED


# --- refresh -------------------------------------------------------------------------------------

REFRESHERS = 50


@dataclass(frozen=True)
class RefreshRace:
    """A session whose token ``consumed`` was raced by many refreshes, and what came of it."""

    user_id: str
    session_id: str
    consumed: str
    winner: pb.RefreshSessionResponse
    losers: list[grpc.aio.AioRpcError]


async def race_refreshes(
    service: Service, backend: Backend, user_id: str, signed_in: pb.AuthenticateResponse
) -> RefreshRace:
    request = pb.RefreshSessionRequest(refresh_token=signed_in.refresh_token)
    async with racing_stubs(service) as stubs:
        outcomes = await race(
            outcome(stubs[i % len(stubs)].RefreshSession(request, timeout=TIMEOUT))
            for i in range(REFRESHERS)
        )
    assert codes(outcomes) == {Code.OK: 1, Code.ABORTED: REFRESHERS - 1}, codes(outcomes)
    [winner] = winners(outcomes)
    losers = [error for code, error in outcomes if code is not Code.OK]
    # Each loser is told plainly that it lost a race, and what to do; no token is echoed.
    assert {error.details() for error in losers} <= backend.lost_to(str(ConcurrentRefresh()))
    assert str(ConcurrentRefresh()) in {error.details() for error in losers}
    assert all(signed_in.refresh_token not in (error.details() or "") for error in losers)
    # A refresh is one conditional PutItem on the session item, and DynamoDB refuses a single
    # write only when it meets a transaction in flight: the losers lose on the condition alone.
    # So none is refused, even with conflicts injected (the writes are still held in flight).
    assert backend.refused() == 0
    return RefreshRace(user_id, signed_in.session_id, signed_in.refresh_token, winner, losers)


async def stored_sessions(service: Service, user_id: str) -> dict[str, dict[str, Any]]:
    """The raw session items of the user's current epoch, by session id."""
    epoch = int((await user_items(service))[user_id]["SessionEpoch"]["N"])
    return {
        item["SessionId"]["S"]: item
        for item in await service.scan(service.tables.sessions)
        if item["UserId"]["S"] == user_id and item["SessionKey"]["S"].startswith(f"{epoch:010d}#")
    }


async def refresh_outcome(service: Service, token: str) -> tuple[Code, Any]:
    request = pb.RefreshSessionRequest(refresh_token=token)
    return await outcome(service.stub.RefreshSession(request, timeout=TIMEOUT))


@pytest.mark.slow
async def test_fifty_concurrent_refreshes_with_one_token_issue_one_token_and_keep_the_session(
    service: Service, backend: Backend
) -> None:
    account = await register(service, label="refresh-race")
    raced = await race_refreshes(
        service, backend, account.id, await sign_in(service, account.email, PASSWORD)
    )

    # Right away, still within the grace, a straggler with the raced token loses one more race.
    assert (await refresh_outcome(service, raced.consumed))[0] is Code.ABORTED
    # One rotation landed: the session holds the winner's token, the raced one as its previous.
    claims = await verify_access_token(service, raced.winner.access_token)
    assert claims["sid"] == raced.session_id
    session = (await stored_sessions(service, raced.user_id))[raced.session_id]
    assert session["TokenHash"]["S"] == token_hash(raced.winner.refresh_token)
    assert session["PreviousTokenHash"]["S"] == token_hash(raced.consumed)
    assert "RetiredTokenHashes" not in session  # no loser rotated it a second time
    # The session survives, and the winner's token is the one that rotates.
    code, again = await refresh_outcome(service, raced.winner.refresh_token)
    assert code is Code.OK, again
    assert (await verify_access_token(service, again.access_token))["sid"] == raced.session_id
    assert list(await stored_sessions(service, raced.user_id)) == [raced.session_id]
    session = (await stored_sessions(service, raced.user_id))[raced.session_id]
    assert session["TokenHash"]["S"] == token_hash(again.refresh_token)


@pytest.mark.slow
async def test_the_raced_token_presented_after_the_grace_is_reuse_and_ends_only_its_session(
    service: Service, backend: Backend
) -> None:
    account = await register(service, label="refresh-reuse")
    other = await sign_in(service, account.email, PASSWORD)  # another device of the same user
    raced = await race_refreshes(
        service, backend, account.id, await sign_in(service, account.email, PASSWORD)
    )

    service.clock.advance(seconds=REUSE_GRACE_SECONDS + 1)  # real time only adds to this
    code, reused = await refresh_outcome(service, raced.consumed)

    assert code is Code.UNAUTHENTICATED, reused
    assert raced.consumed not in (reused.details() or "")
    # The raced session has ended: the token that won it no longer refreshes ...
    assert raced.session_id not in await stored_sessions(service, raced.user_id)
    assert (await refresh_outcome(service, raced.winner.refresh_token))[0] is Code.UNAUTHENTICATED
    # ... while the user's other session, which held no copied token, lives on.
    assert list(await stored_sessions(service, raced.user_id)) == [other.session_id]
    code, refreshed = await refresh_outcome(service, other.refresh_token)
    assert code is Code.OK, refreshed
    rotated = (await stored_sessions(service, raced.user_id))[other.session_id]
    assert rotated["TokenHash"]["S"] == token_hash(refreshed.refresh_token)


# --- profile updates -----------------------------------------------------------------------------

UPDATERS = 20


@pytest.mark.slow
async def test_twenty_concurrent_updates_at_one_version_let_exactly_one_win_and_store_its_names(
    service: Service, backend: Backend
) -> None:
    account = await register(service, label="update-race")
    requests = [
        pb.UpdateProfileRequest(
            id=account.id, first_name=f"First{i}", last_name=f"Last{i}", expected_version=1
        )
        for i in range(UPDATERS)
    ]

    async with racing_stubs(service) as stubs:
        outcomes = await race(
            (
                outcome(stubs[i % len(stubs)].UpdateProfile(request, timeout=TIMEOUT))
                for i, request in enumerate(requests)
            )
        )

    assert codes(outcomes) == {Code.OK: 1, Code.ABORTED: UPDATERS - 1}, codes(outcomes)
    # Every loser ends on a fresh read showing that version 1 is gone (or, with conflicts, may
    # have met concurrent writes on every attempt).
    stale = str(StaleVersion(expected=1, actual=2))
    lost = {error.details() for code, error in outcomes if code is not Code.OK}
    assert stale in lost and lost <= backend.lost_to(stale)
    assert (backend.refused() > 0) is backend.conflicts_injected
    [winner] = winners(outcomes)
    # The winner's names, both from one request: no mix of two writes.
    assert (winner.first_name, winner.last_name) in {(r.first_name, r.last_name) for r in requests}
    assert winner.version == 2
    stored = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert (stored.first_name, stored.last_name, stored.version) == (
        winner.first_name,
        winner.last_name,
        2,
    )
    item = (await user_items(service))[account.id]
    assert (item["FirstName"]["S"], item["LastName"]["S"], item["Version"]["N"]) == (
        winner.first_name,
        winner.last_name,
        "2",
    )


# --- delete racing update ------------------------------------------------------------------------

ROUNDS = 20
LEGITIMATE = {Code.OK, Code.NOT_FOUND, Code.ABORTED}


@dataclass(frozen=True)
class Round:
    """One user, the writers racing its deletion, and the status each got."""

    user: pb.User
    new_email: str  # where the email change moves it: a fresh address or a neighbour's
    takes_neighbours_email: bool
    codes: dict[str, Code]

    @property
    def deleted(self) -> bool:
        return Code.OK in (self.codes["delete at v1"], self.codes["delete at v2"])


def rivals(
    service: Service, stub: Any, user: pb.User, i: int, new_email: str
) -> dict[str, Coroutine[Any, Any, Code]]:
    """The writers racing one user's deletion, not started yet; all but "delete at v2" expect
    version 1."""

    async def delete(version: int) -> Code:
        request = pb.DeleteUserRequest(id=user.id, expected_version=version)
        return (await outcome(stub.DeleteUser(request, timeout=TIMEOUT)))[0]

    async def change_email(stub: Any, user: pb.User, email: str) -> Code:
        request = pb.ChangeEmailRequest(id=user.id, email=email, expected_version=1)
        return (await outcome(stub.ChangeEmail(request, timeout=TIMEOUT)))[0]

    async def rename(**names: str) -> Code:
        request = pb.UpdateProfileRequest(id=user.id, expected_version=1, **names)
        return (await outcome(stub.UpdateProfile(request, timeout=TIMEOUT)))[0]

    return {
        "delete at v1": delete(1),
        "rename first": rename(first_name=f"Renamed{i}"),
        "rename last": rename(last_name=f"Changed{i}"),
        "change email": change_email(stub, user, new_email),
        # Lands only after one of the version-1 changes won (and no deletion did).
        "delete at v2": delete(2),
    }


async def race_rounds(service: Service, users: list[pb.User], rng: random.Random) -> list[Round]:
    """Every round at once: each user's rivals, over several channels, in a shuffled order."""
    rounds: list[tuple[pb.User, str, bool]] = []
    for i, user in enumerate(users):
        takes_neighbours = i % 2 == 0  # the neighbour's address is freed by its own round, or not
        neighbour = users[(i + 1) % len(users)]
        new_email = mixed_case(
            neighbour.email if takes_neighbours else f"moved-{uuid4().hex[:12]}@example.com", rng
        )
        rounds.append((user, new_email, takes_neighbours))
    async with racing_stubs(service) as stubs:
        calls = [
            (i, name, call)
            for i, (user, new_email, _) in enumerate(rounds)
            for name, call in rivals(service, stubs[i % len(stubs)], user, i, new_email).items()
        ]
        rng.shuffle(calls)
        results = await race(call for _, _, call in calls)
    by_round: list[dict[str, Code]] = [{} for _ in rounds]
    for (i, name, _), code in zip(calls, results, strict=True):
        by_round[i][name] = code
    return [Round(user, email, takes, by_round[i]) for i, (user, email, takes) in enumerate(rounds)]


@pytest.mark.slow
async def test_deletes_racing_updates_and_email_changes_never_resurrect_a_user_or_orphan_a_guard(
    service: Service, backend: Backend
) -> None:
    rng = random.Random(4)
    accounts = await race(register(service, label=f"racer{i}") for i in range(ROUNDS))

    rounds = await race_rounds(service, [account.user for account in accounts], rng)

    for round_ in rounds:
        assert set(round_.codes.values()) <= LEGITIMATE | (
            {Code.ALREADY_EXISTS} if round_.takes_neighbours_email else set()
        ), round_
        at_v1 = [
            name
            for name, code in round_.codes.items()
            if name != "delete at v2" and code is Code.OK
        ]
        assert len(at_v1) == 1, round_  # exactly one write at version 1 lands
        assert round_.codes["delete at v2"] is not Code.OK or at_v1 != ["delete at v1"], round_
    stored = await user_items(service)
    for round_ in rounds:
        user = round_.user
        if round_.deleted:
            # Gone for good: no later write of a racer brought it back.
            assert user.id not in stored, round_
            missing = await outcome(
                service.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=TIMEOUT)
            )
            assert missing[0] is Code.NOT_FOUND, round_
            continue
        item = stored[user.id]
        [winner] = [name for name, code in round_.codes.items() if code is Code.OK]
        assert item["Version"]["N"] == "2", round_
        expected = {
            "rename first": (user.email, f"Renamed{rounds.index(round_)}", user.last_name),
            "rename last": (user.email, user.first_name, f"Changed{rounds.index(round_)}"),
            "change email": (round_.new_email, user.first_name, user.last_name),
        }[winner]
        assert (item["Email"]["S"], item["FirstName"]["S"], item["LastName"]["S"]) == expected
        current = await service.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=TIMEOUT)
        assert (current.email, current.first_name, current.last_name, current.version) == (
            *expected,
            2,
        )
    # Every user has its guard, and every guard belongs to a user who has that email.
    assert await guard_items(service) == {
        Email.parse(item["Email"]["S"]).normalized: user_id for user_id, item in stored.items()
    }
    assert len(stored) == sum(not round_.deleted for round_ in rounds)
    assert (backend.refused() > 0) is backend.conflicts_injected


# --- email change: two users confirming one new address -----------------------------------------

PAIRS = 6


async def pending_change(service: Service, users: Sequence[pb.User], address: str) -> list[str]:
    """Each of ``users`` asks to move to ``address``; their confirm tokens, in the same order
    (a token begins with its user's id)."""
    for user in users:
        await service.stub.RequestEmailChange(
            pb.RequestEmailChangeRequest(id=user.id, new_email=address, expected_version=1),
            timeout=TIMEOUT,
        )
    mailed = [
        reset_token_from(await service.smtp.wait_for_message(to=address, timeout=30)) for _ in users
    ]
    return [next(token for token in mailed if token.startswith(user.id)) for user in users]


@pytest.mark.slow
async def test_two_users_confirming_the_same_new_address_at_once_one_wins_the_other_unchanged(
    service: Service, backend: Backend
) -> None:
    rng = random.Random(15)
    pairs = []
    for i in range(PAIRS):
        first = await register(service, label=f"mover{i}a")
        second = await register(service, label=f"mover{i}b")
        address = f"wanted-{uuid4().hex[:10]}@example.com"
        tokens = await pending_change(service, [first.user, second.user], address)
        pairs.append(((first, second), address, tokens))
    before = await user_items(service)
    calls = [
        (i, side, pb.ConfirmEmailChangeRequest(token=token))
        for i, (_, _, tokens) in enumerate(pairs)
        for side, token in enumerate(tokens)
    ]
    rng.shuffle(calls)

    async with racing_stubs(service) as stubs:
        results = await race(
            outcome(stubs[n % len(stubs)].ConfirmEmailChange(request, timeout=TIMEOUT))
            for n, (_, _, request) in enumerate(calls)
        )

    by_pair: dict[int, dict[int, tuple[Code, Any]]] = {}
    for (i, side, _), result in zip(calls, results, strict=True):
        by_pair.setdefault(i, {})[side] = result
    stored = await user_items(service)
    guards = await guard_items(service)
    for i, ((first, second), address, _) in enumerate(pairs):
        outcomes = [by_pair[i][0], by_pair[i][1]]
        assert codes(outcomes)[Code.OK] == 1, (i, outcomes)
        [(winner_side, winner)] = [(s, r) for s, (c, r) in enumerate(outcomes) if c is Code.OK]
        loser_code, loser_error = outcomes[1 - winner_side]
        # The loser is told the address is taken; with conflicts injected it may instead have
        # met concurrent writes on every attempt (ABORTED, retry).
        assert loser_code in (Code.ALREADY_EXISTS, Code.ABORTED), (i, outcomes)
        if loser_code is Code.ABORTED:
            assert loser_error.details() in backend.lost_to(), loser_error
        won, lost = (first, second) if winner_side == 0 else (second, first)
        assert (winner.id, winner.email, winner.email_verified, winner.version) == (
            won.id,
            address,
            True,
            2,
        )
        # The loser is as it was: its address, its version, its change still pending.
        assert stored[lost.id] == before[lost.id], i
        assert guards[Email.parse(address).normalized] == won.id
        assert guards[Email.parse(lost.email).normalized] == lost.id
        assert Email.parse(won.email).normalized not in guards  # the winner's old one is free
    # Every guard belongs to a user who has that address, and every user has its guard.
    assert guards == {
        Email.parse(item["Email"]["S"]).normalized: user_id for user_id, item in stored.items()
    }
    # Retried after a conflict, a loser reads the taken guard and is told so: ABORTED is the
    # exception, never the rule.
    outcomes_seen = Counter(by_pair[i][side][0] for i in by_pair for side in (0, 1))
    assert outcomes_seen[Code.ALREADY_EXISTS] > outcomes_seen[Code.ABORTED], outcomes_seen
    assert (backend.refused() > 0) is backend.conflicts_injected


# --- second factors ------------------------------------------------------------------------------

RECOVERY_RACERS = 8


async def test_concurrent_uses_of_one_recovery_code_let_exactly_one_turn_totp_off(
    service: Service, backend: Backend
) -> None:
    account = await register(service, label="recovery-race")
    began = await service.stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=account.id), timeout=TIMEOUT
    )
    confirmed = await service.stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            user_id=account.id, code=pyotp.TOTP(began.secret).at(service.clock())
        ),
        timeout=TIMEOUT,
    )
    request = pb.DisableTotpRequest(user_id=account.id, recovery_code=confirmed.recovery_codes[0])

    async with racing_stubs(service) as stubs:
        outcomes = await race(
            outcome(stubs[n % len(stubs)].DisableTotp(request, timeout=TIMEOUT))
            for n in range(RECOVERY_RACERS)
        )

    assert codes(outcomes)[Code.OK] == 1, codes(outcomes)
    # A loser finds TOTP off already, or the code spent; with conflicts injected it may have met
    # concurrent writes on every attempt (ABORTED). Never INTERNAL, never a second win.
    assert set(codes(outcomes)) <= {
        Code.OK,
        Code.FAILED_PRECONDITION,
        Code.UNAUTHENTICATED,
        Code.ABORTED,
    }, codes(outcomes)
    events = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=account.id, page_size=100), timeout=TIMEOUT
    )
    kinds = [event.WhichOneof("kind") for event in events.events]
    assert kinds.count("recovery_code_used") == 1 and kinds.count("second_factor_removed") == 1
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert not user.totp_enabled and user.recovery_codes_remaining == 0
    assert (backend.refused() > 0) is backend.conflicts_injected, "the racers never met"


# --- sign-in with a second factor ----------------------------------------------------------------

COMPLETERS = 8


@pytest.mark.slow
async def test_concurrent_completions_of_one_sign_in_challenge_open_exactly_one_session(
    service: Service, backend: Backend
) -> None:
    account = await register(service, label="challenge-race")
    began = await service.stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=account.id), timeout=TIMEOUT
    )
    app = pyotp.TOTP(began.secret)
    enrolled = await service.stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(user_id=account.id, code=app.at(service.clock())),
        timeout=TIMEOUT,
    )
    service.clock.advance(seconds=30)  # this step's code was spent by the enrollment
    challenged = await sign_in(service, account.email, PASSWORD)
    token = challenged.challenge.challenge_token
    enrolled_step = (await user_items(service))[account.id]["Totp"]["M"]["LastStep"]
    # Every completer holds a good proof: the app's code (of this step or the next, both
    # accepted) or a recovery code of its own.
    requests = [
        pb.CompleteSignInRequest(
            challenge_token=token, totp_code=app.at(service.clock() + timedelta(seconds=30 * step))
        )
        for step in (0, 1, 0, 1)
    ]
    requests += [
        pb.CompleteSignInRequest(challenge_token=token, recovery_code=code)
        for code in enrolled.recovery_codes[: COMPLETERS - 4]
    ]

    async with racing_stubs(service) as stubs:
        outcomes = await race(
            outcome(stubs[i % len(stubs)].CompleteSignIn(request, timeout=TIMEOUT))
            for i, request in enumerate(requests)
        )

    assert codes(outcomes)[Code.OK] == 1, codes(outcomes)
    [winner] = winners(outcomes)
    losers = [error for code, error in outcomes if code is not Code.OK]
    # A loser finds the challenge spent; with conflicts it may have met writes on every attempt.
    assert {error.code() for error in losers} <= {Code.UNAUTHENTICATED, Code.ABORTED}
    spent = str(InvalidSignInChallenge())
    assert {error.details() for error in losers} <= backend.lost_to(spent)
    assert all(token not in (error.details() or "") for error in losers)
    assert (backend.refused() > 0) is backend.conflicts_injected
    # One session, the winner's; the challenge gone; exactly the winner's proof spent.
    assert list(await stored_sessions(service, account.id)) == [winner.session_id]
    item = (await user_items(service))[account.id]
    assert "SignInChallenges" not in item
    recovery_left = len(item["RecoveryCodes"]["B"]) // RECOVERY_HASH_BYTES
    totp_used = item["Totp"]["M"]["LastStep"] != enrolled_step
    assert recovery_left in (9, 10) and (recovery_left == 10) == totp_used
    assert "FailedLogins" not in item, "no loser was counted as a wrong code"
