"""The load itself: workers that pick RPCs from the mix and keep every account's bookkeeping true.

What counts as expected: OK with a reply that matches what this run last wrote, plus the
statuses the workload provokes on purpose and can predict exactly:

- a deliberate second registration of a known address in another letter case: ALREADY_EXISTS;
- a deliberate race of two UpdateProfile with one expected_version, or of two RefreshSession
  with one token: exactly one OK, the other ABORTED.

Anything else (an ABORTED outside a race, an OK that returns stale data, UNAVAILABLE, ...) is
unexpected.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from biome.user.v1 import user_service_pb2 as pb
from google.protobuf.message import Message

from tools.load.accounts import Account, Accounts, Session
from tools.load.mix import Mix
from tools.load.rpc import Result, Stub, send
from tools.load.stats import Stats

EMAIL_DOMAIN = "example.com"
MAX_LIST_PAGE = 20


@dataclass(frozen=True)
class Plan:
    """How much load, how fast, for how long, and in what mix."""

    count: int
    concurrency: int
    duration: float
    rpc_timeout: float
    mix: Mix
    race_fraction: float
    duplicate_fraction: float
    seed: int | None = None


class Workload:
    """``plan.concurrency`` workers sending at most ``plan.count`` RPCs within ``plan.duration``."""

    def __init__(self, stub: Stub, plan: Plan, stats: Stats, accounts: Accounts) -> None:
        self._stub = stub
        self._plan = plan
        self._stats = stats
        self._accounts = accounts
        self._rng = random.Random(plan.seed)
        self._run_id = secrets.token_hex(4)  # fresh addresses on every run against one instance
        self._serial = itertools.count(1)
        self._issued = 0
        self._deadline = 0.0
        self._list_token = ""
        self._per_account: dict[str, Callable[[Account], Awaitable[None]]] = {
            "Authenticate": self._authenticate,
            "RefreshSession": self._refresh,
            "GetUser": self._get_user,
            "GetUserByEmail": self._get_user_by_email,
            "UpdateProfile": self._update_profile,
            "ChangePassword": self._change_password,
            "Logout": self._logout,
        }

    async def run(self) -> str:
        """Runs until the count is sent or the time is up; which one stopped it."""
        self._deadline = time.monotonic() + self._plan.duration
        await asyncio.gather(*(self._worker() for _ in range(self._plan.concurrency)))
        return "count" if self._issued >= self._plan.count else "time"

    def _time_is_up(self) -> bool:
        return time.monotonic() >= self._deadline

    def _reserve(self, rpcs: int) -> bool:
        """Takes ``rpcs`` from the budget, right before sending them; False when none are left."""
        if self._issued + rpcs > self._plan.count or self._time_is_up():
            return False
        self._issued += rpcs
        return True

    async def _worker(self) -> None:
        while self._issued < self._plan.count and not self._time_is_up():
            await self._step(self._plan.mix.pick(self._rng))

    async def _step(self, method: str) -> None:
        if method == "RegisterUser":
            duplicate = self._rng.random() < self._plan.duplicate_fraction
            known = self._accounts.pick(self._rng) if duplicate else None
            await (self._register_again(known) if known is not None else self._register())
            return
        if method == "ListUsers":
            await self._list_users()
            return
        needs_session = method in {"RefreshSession", "Logout"}
        account = self._accounts.pick(self._rng, lambda a: bool(a.sessions) or not needs_session)
        if account is None and needs_session:
            account, method = self._accounts.pick(self._rng), "Authenticate"
        if account is None:
            await self._register()  # nobody to act on yet
            return
        async with account.lock:
            if account.uncertain:
                return
            if needs_session and not account.sessions:
                method = "Authenticate"  # its sessions ended while this worker waited
            await self._per_account[method](account)

    # One method per RPC; those about an account run holding its lock (see Account).

    async def _register(self) -> None:
        serial = next(self._serial)
        email = f"load-{self._run_id}-{serial}@{EMAIL_DOMAIN}"
        password, first_name, last_name = _new_password(), "Load", f"User{serial}"
        request = pb.RegisterUserRequest(
            email=email, password=password, first_name=first_name, last_name=last_name
        )
        result = await self._send_one("RegisterUser", request)
        if result is None:
            return
        if not result.ok:
            self._record(result, expected=False, note=result.details)
            return
        account = Account(result.reply.id, email, password, first_name, last_name, version=1)
        note = _differs(account, result.reply)
        account.uncertain = bool(note)
        self._accounts.add(account)
        self._record(result, expected=not note, note=note)

    async def _register_again(self, account: Account) -> None:
        request = pb.RegisterUserRequest(
            email=account.email.upper(), password=_new_password(), first_name="Twin", last_name="X"
        )
        result = await self._send_one("RegisterUser", request)
        if result is None:
            return
        expected = result.code is grpc.StatusCode.ALREADY_EXISTS
        note = "" if expected else f"re-registering {account.email} in upper case was not refused"
        self._record(result, expected=expected, note=note or result.details)

    async def _authenticate(self, account: Account) -> None:
        request = pb.AuthenticateRequest(email=account.email, password=account.password)
        result = await self._send_one("Authenticate", request)
        if result is None:
            return
        note = result.details
        if result.ok:
            note = _differs(account, result.reply.user)
            account.add_session(Session(result.reply.session_id, result.reply.refresh_token))
        self._settle(account, result, note)

    async def _refresh(self, account: Account) -> None:
        session = self._rng.choice(account.sessions)
        request = pb.RefreshSessionRequest(refresh_token=session.refresh_token)
        if self._races():
            results = await self._send_race("RefreshSession", [request, request])
        else:
            single = await self._send_one("RefreshSession", request)
            results = [single] if single is not None else []
        winners = [result for result in results if result.ok]
        if winners:
            session.refresh_token = winners[0].reply.refresh_token
        for result, (expected, note) in zip(results, _judge(results), strict=True):
            if result.ok and result.reply.refresh_token == request.refresh_token:
                expected, note = False, "the refresh token was not rotated"
            self._settle(account, result, note, expected=expected)

    async def _update_profile(self, account: Account) -> None:
        racing = self._races()
        requests = [self._profile_change(account) for _ in range(2 if racing else 1)]
        if racing:
            results = await self._send_race("UpdateProfile", requests)
        else:
            single = await self._send_one("UpdateProfile", requests[0])
            results = [single] if single is not None else []
        winner = next((i for i, result in enumerate(results) if result.ok), None)
        if winner is not None:
            change = requests[winner]
            if change.HasField("first_name"):
                account.first_name = change.first_name
            if change.HasField("last_name"):
                account.last_name = change.last_name
            account.version += 1
        for result, (expected, note) in zip(results, _judge(results), strict=True):
            if result.ok:
                note = _differs(account, result.reply)
                expected = expected and not note
            self._settle(account, result, note, expected=expected)

    def _profile_change(self, account: Account) -> pb.UpdateProfileRequest:
        """A change of the first name, the last name or both, to names never used before."""
        serial = next(self._serial)
        which = self._rng.choice(("first", "last", "both"))
        request = pb.UpdateProfileRequest(id=account.user_id, expected_version=account.version)
        if which in {"first", "both"}:
            request.first_name = f"Ada{serial}"
        if which in {"last", "both"}:
            request.last_name = f"Lovelace{serial}"
        return request

    async def _change_password(self, account: Account) -> None:
        new_password = _new_password()
        keep = self._rng.choice(account.sessions) if account.sessions else None
        request = pb.ChangePasswordRequest(
            user_id=account.user_id,
            current_password=account.password,
            new_password=new_password,
            keep_session_id=keep.session_id if keep else "",
        )
        result = await self._send_one("ChangePassword", request)
        if result is None:
            return
        if result.ok:
            account.password = new_password
            account.version += 1
            account.sessions = [keep] if keep else []  # every other session has ended
        self._settle(account, result, result.details)

    async def _logout(self, account: Account) -> None:
        session = self._rng.choice(account.sessions)
        result = await self._send_one(
            "Logout", pb.LogoutRequest(refresh_token=session.refresh_token)
        )
        if result is None:
            return
        if result.ok:
            account.sessions.remove(session)
        self._settle(account, result, result.details)

    async def _get_user(self, account: Account) -> None:
        result = await self._send_one("GetUser", pb.GetUserRequest(id=account.user_id))
        if result is not None:
            self._settle(account, result, self._read_note(account, result))

    async def _get_user_by_email(self, account: Account) -> None:
        request = pb.GetUserByEmailRequest(email=_random_case(account.email, self._rng))
        result = await self._send_one("GetUserByEmail", request)
        if result is not None:
            self._settle(account, result, self._read_note(account, result))

    async def _list_users(self) -> None:
        page_size = self._rng.randint(1, MAX_LIST_PAGE)
        request = pb.ListUsersRequest(page_size=page_size, page_token=self._list_token)
        result = await self._send_one("ListUsers", request)
        if result is None:
            return
        note = result.details
        if result.ok:
            self._list_token = result.reply.next_page_token  # "" after the last page: start over
            too_many = len(result.reply.users) > page_size
            note = f"{len(result.reply.users)} users for page_size {page_size}" if too_many else ""
        self._record(result, expected=result.ok and not note, note=note)

    # Sending and judging.

    @staticmethod
    def _read_note(account: Account, result: Result) -> str:
        return _differs(account, result.reply) if result.ok else result.details

    def _races(self) -> bool:
        return self._rng.random() < self._plan.race_fraction and self._reserve(2)

    async def _send_one(self, method: str, request: Message) -> Result | None:
        if not self._reserve(1):
            return None
        return await send(self._stub, method, request, self._plan.rpc_timeout)

    async def _send_race(self, method: str, requests: Sequence[Message]) -> list[Result]:
        """Sends ``requests`` at once (already reserved): contenders for one change."""
        timeout = self._plan.rpc_timeout
        return list(await asyncio.gather(*(send(self._stub, method, r, timeout) for r in requests)))

    def _settle(
        self, account: Account, result: Result, note: str, *, expected: bool | None = None
    ) -> None:
        """Records an RPC about ``account``; an unexpected one leaves the account uncertain."""
        if expected is None:
            expected = result.ok and not note
        if not expected:
            account.uncertain = True
        self._record(result, expected=expected, note=note)

    def _record(self, result: Result, *, expected: bool, note: str) -> None:
        self._stats.record(result.method, result.code, result.seconds, expected=expected, note=note)


def _judge(results: Sequence[Result]) -> list[tuple[bool, str]]:
    """For each result of one change (a race when there are several): expected, and why not.

    Of racing contenders exactly one must win and every other one must get ABORTED.
    """
    winners = [result for result in results if result.ok]
    verdicts: list[tuple[bool, str]] = []
    for result in results:
        if result.ok:
            first = result is winners[0]
            verdicts.append((first, "" if first else "two contenders both won a race"))
        elif result.code is grpc.StatusCode.ABORTED and len(results) > 1:
            verdicts.append((len(winners) == 1, "" if winners else "no contender won a race"))
        else:
            verdicts.append((False, result.details))
    return verdicts


def _differs(account: Account, user: pb.User) -> str:
    """Why the server's ``user`` is not what this run last wrote ("" when it is)."""
    wanted = (account.user_id, account.email, account.first_name, account.last_name)
    got = (user.id, user.email, user.first_name, user.last_name)
    if wanted == got and user.version == account.version:
        return ""
    return (
        f"user {account.user_id}: expected {wanted[1:]} at version {account.version}, "
        f"got {got[1:]} at version {user.version}"
        + ("" if user.id == account.user_id else f" for id {user.id}")
    )


def _new_password() -> str:
    return f"load-{secrets.token_urlsafe(12)}"


def _random_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in text)
