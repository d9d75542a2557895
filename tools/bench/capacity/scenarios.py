"""The calls whose DynamoDB traffic is counted: each RPC of the issue's goals table, for a user with
one session and, where sessions could matter, with many. Each call is measured alone (nothing else
talks to the recording proxy meanwhile); what prepares it (signing in to open sessions, enabling
a user again) is not counted."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from biome.user.v1 import user_service_pb2 as pb

from tools.bench.capacity.recording_proxy import Recorded, RecordingProxy

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PASSWORDS = ("capacity-bench-passphrase-1618", "capacity-bench-passphrase-2718")
WRONG_PASSWORD = "not-the-capacity-passphrase-0000"
WRONG = "wrong password"  # the variant of Authenticate that signs in with WRONG_PASSWORD
LIST_PAGE_SIZE = 50
# Work the service does right after a reply (none on these paths today) would land here.
SETTLE_SECONDS = 0.05
PROBE_KEY = "readiness-probe"  # persistence.readiness reads this key; not an RPC's traffic


@dataclass
class Account:
    """A user the scenarios made, with the sessions it holds (oldest first)."""

    id: str
    email: str
    password: str
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (session id, refresh token)


@dataclass(frozen=True)
class Scenario:
    """One row of the capacity table: an RPC, and the sessions its user holds before the call."""

    rpc: str
    sessions: int = 0
    variant: str = ""

    @property
    def name(self) -> str:
        parts = [self.rpc, self.variant] if self.variant else [self.rpc]
        if self.sessions:
            parts.append(f"{self.sessions} session" + ("s" if self.sessions > 1 else ""))
        return ", ".join(parts)


def scenarios(many: int) -> list[Scenario]:
    """Every scenario, ``many`` being the sessions of the heavy user."""
    return [
        Scenario("GetUser", 1),
        Scenario("GetUserByEmail", 1),
        Scenario("ListUsers", variant=f"page of {LIST_PAGE_SIZE}"),
        Scenario("RegisterUser"),
        Scenario("Authenticate", 1),
        Scenario("Authenticate", many),
        Scenario("Authenticate", 1, WRONG),
        Scenario("RefreshSession", 1),
        Scenario("RefreshSession", many),
        Scenario("LogoutAll", 1),
        Scenario("LogoutAll", many),
        Scenario("DisableUser", 1),
        Scenario("DisableUser", many),
        Scenario("ChangePassword", 1),
        Scenario("ChangePassword", many),
    ]


Measured = Callable[[], Awaitable[Any]]


class Driver:
    """Runs scenarios against the service behind ``proxy``; returns each call's exchanges."""

    def __init__(self, stub: UserServiceAsyncStub, proxy: RecordingProxy, timeout: float) -> None:
        self._stub, self._proxy, self._timeout = stub, proxy, timeout
        self._numbers = itertools.count()
        self._run = f"{id(self):x}"[-6:]

    async def run(self, scenario: Scenario, calls: int) -> list[list[Recorded]]:
        """``calls`` measured calls of ``scenario``, each on a user prepared for it."""
        account = await self.register() if scenario.sessions else None
        expected = grpc.StatusCode.UNAUTHENTICATED if scenario.variant == WRONG else None
        measured: list[list[Recorded]] = []
        for _ in range(calls):
            if account is not None:
                await self._hold_sessions(account, scenario.sessions)
            measured.append(await self._measure(self._call(scenario, account), expected))
            if account is not None and scenario.rpc == "DisableUser":  # back, unmeasured
                await self._stub.EnableUser(
                    pb.EnableUserRequest(id=account.id), timeout=self._timeout
                )
        return measured

    async def register(self) -> Account:
        number = next(self._numbers)
        email = f"capacity-{self._run}-{number}@bench.example.com"
        request = pb.RegisterUserRequest(
            email=email, password=PASSWORDS[0], first_name="Capacity", last_name=f"User {number}"
        )
        reply = await self._stub.RegisterUser(request, timeout=self._timeout)
        return Account(reply.id, email, PASSWORDS[0])

    def _call(self, scenario: Scenario, account: Account | None) -> Measured:
        if account is None:
            return self.register if scenario.rpc == "RegisterUser" else self._list_users
        calls: dict[str, Callable[[Account], Awaitable[Any]]] = {
            "GetUser": self._get_user,
            "GetUserByEmail": self._get_user_by_email,
            "Authenticate": self._wrong_sign_in if scenario.variant == WRONG else self._sign_in,
            "RefreshSession": self._refresh,
            "LogoutAll": self._logout_all,
            "DisableUser": self._disable,
            "ChangePassword": self._change_password,
        }
        call = calls[scenario.rpc]
        return lambda: call(account)

    async def _list_users(self) -> None:
        request = pb.ListUsersRequest(page_size=LIST_PAGE_SIZE)
        await self._stub.ListUsers(request, timeout=self._timeout)

    async def _get_user(self, account: Account) -> None:
        await self._stub.GetUser(pb.GetUserRequest(id=account.id), timeout=self._timeout)

    async def _get_user_by_email(self, account: Account) -> None:
        request = pb.GetUserByEmailRequest(email=account.email)
        await self._stub.GetUserByEmail(request, timeout=self._timeout)

    async def _wrong_sign_in(self, account: Account) -> None:
        request = pb.AuthenticateRequest(email=account.email, password=WRONG_PASSWORD)
        await self._stub.Authenticate(request, timeout=self._timeout)

    async def _logout_all(self, account: Account) -> None:
        request = pb.LogoutAllRequest(user_id=account.id)
        await self._stub.LogoutAll(request, timeout=self._timeout)
        account.sessions.clear()

    async def _disable(self, account: Account) -> None:
        await self._stub.DisableUser(pb.DisableUserRequest(id=account.id), timeout=self._timeout)
        account.sessions.clear()

    async def _measure(self, call: Measured, expected: grpc.StatusCode | None) -> list[Recorded]:
        mark = self._proxy.mark()
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            if error.code() != expected:
                raise
        else:
            if expected is not None:
                raise RuntimeError(f"expected {expected.name}, the call succeeded")
        await asyncio.sleep(SETTLE_SECONDS)
        return [r for r in self._proxy.since(mark) if not _is_probe(r)]

    async def _hold_sessions(self, account: Account, count: int) -> None:
        if len(account.sessions) > count:  # the newest beyond the count end, unmeasured
            for _, token in account.sessions[count:]:
                await self._stub.Logout(
                    pb.LogoutRequest(refresh_token=token), timeout=self._timeout
                )
            del account.sessions[count:]
        while len(account.sessions) < count:
            await self._sign_in(account)

    async def _sign_in(self, account: Account) -> None:
        request = pb.AuthenticateRequest(email=account.email, password=account.password)
        reply = await self._stub.Authenticate(request, timeout=self._timeout)
        account.sessions.append((reply.session_id, reply.refresh_token))
        # The service ends the oldest beyond its maximum; the scenarios never go past it.

    async def _refresh(self, account: Account) -> None:
        session, token = account.sessions[-1]
        request = pb.RefreshSessionRequest(refresh_token=token)
        reply = await self._stub.RefreshSession(request, timeout=self._timeout)
        account.sessions[-1] = session, reply.refresh_token

    async def _change_password(self, account: Account) -> None:
        kept = account.sessions[-1]
        new = PASSWORDS[1] if account.password == PASSWORDS[0] else PASSWORDS[0]
        request = pb.ChangePasswordRequest(
            user_id=account.id,
            current_password=account.password,
            new_password=new,
            keep_session_id=kept[0],
        )
        await self._stub.ChangePassword(request, timeout=self._timeout)
        account.password = new
        account.sessions[:] = [kept]


def _is_probe(record: Recorded) -> bool:
    key = record.exchange.request.get("Key") or {}
    return any(value == {"S": PROBE_KEY} for value in key.values())
