"""The calls whose DynamoDB traffic is counted: each RPC of the issue's goals table, for a user with
one session and, where sessions could matter, with many; and the RPCs of email verification,
email change and session management (issue 15). Each call is measured alone (nothing else talks
to the recording proxy meanwhile); what prepares it (signing in to open sessions, enabling a user
again, registering an unverified user and reading its mail) is not counted. A call whose service
works on after the reply (a mail, the resend's lookup and write) is measured until its mail is in
the outbox, which the service writes only once its DynamoDB writes have landed."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import grpc
import pyotp
from biome.user.v1 import user_service_pb2 as pb

from tools.bench.capacity.mail import Outbox, link_token, verification_code
from tools.bench.capacity.recording_proxy import Recorded, RecordingProxy

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PASSWORDS = ("capacity-bench-passphrase-1618", "capacity-bench-passphrase-2718")
WRONG_PASSWORD = "not-the-capacity-passphrase-0000"
WRONG = "wrong password"  # the variant of Authenticate that signs in with WRONG_PASSWORD
BY_TOKEN, BY_CODE, WRONG_CODE = "link token", "code", "wrong code"  # variants of VerifyEmail
# Sign-in with a second factor (issue 16): Authenticate of a user with TOTP (a challenge, no
# session), and CompleteSignIn with the app's code, a recovery code, or a wrong code.
CHALLENGED, TOTP_CODE, RECOVERY_CODE = "TOTP on, challenge", "TOTP code", "recovery code"
LIST_PAGE_SIZE = 50
# After the reply (and, for a call that mails, after its mail is in the outbox): time for any
# request still in flight to reach the proxy.
SETTLE_SECONDS = 0.05
MAIL_TIMEOUT_SECONDS = 10.0
PROBE_KEY = "readiness-probe"  # persistence.readiness reads this key; not an RPC's traffic


@dataclass
class Account:
    """A user the scenarios made, with the sessions it holds (oldest first)."""

    id: str
    email: str
    password: str
    version: int = 1
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (session id, refresh token)


@dataclass(frozen=True)
class _TotpAccount:
    """A user with TOTP on: its secret (as the app holds it) and its recovery codes."""

    account: Account
    secret: str
    recovery_codes: tuple[str, ...]


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
        Scenario("RegisterUser", variant="unverified, with its verification mail"),
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
        Scenario("VerifyEmail", variant=BY_TOKEN),
        Scenario("VerifyEmail", variant=BY_CODE),
        Scenario("VerifyEmail", variant=WRONG_CODE),
        Scenario("ResendVerification"),
        Scenario("RequestEmailChange"),
        Scenario("ConfirmEmailChange"),
        Scenario("ListSessions", 1),
        Scenario("ListSessions", many),
        Scenario("EndSession", 1),
        Scenario("EndSession", many),
        Scenario("Authenticate", variant=CHALLENGED),
        Scenario("CompleteSignIn", variant=TOTP_CODE),
        Scenario("CompleteSignIn", variant=RECOVERY_CODE),
        Scenario("CompleteSignIn", variant=WRONG_CODE),
    ]


Measured = Callable[[], Awaitable[Any]]


class Driver:
    """Runs scenarios against the service behind ``proxy``; returns each call's exchanges."""

    def __init__(
        self, stub: UserServiceAsyncStub, proxy: RecordingProxy, outbox: Outbox, timeout: float
    ) -> None:
        self._stub, self._proxy, self._outbox, self._timeout = stub, proxy, outbox, timeout
        self._numbers = itertools.count()
        self._run = f"{id(self):x}"[-6:]

    async def run(self, scenario: Scenario, calls: int) -> list[list[Recorded]]:
        """``calls`` measured calls of ``scenario``, each on a user prepared for it."""
        account = await self._verified() if scenario.sessions else None
        wrong = scenario.variant in (WRONG, WRONG_CODE)  # CompleteSignIn's too
        expected = grpc.StatusCode.UNAUTHENTICATED if wrong else None
        measured: list[list[Recorded]] = []
        for _ in range(calls):
            if account is not None:
                await self._hold_sessions(account, scenario.sessions)
            if account is not None:
                call = self._call(scenario, account)
            else:
                call = await self._prepare(scenario)
            measured.append(await self._measure(call, expected))
            if account is not None and scenario.rpc == "DisableUser":  # back, unmeasured
                await self._stub.EnableUser(
                    pb.EnableUserRequest(id=account.id), timeout=self._timeout
                )
        return measured

    async def register(self) -> Account:
        """A new user, unverified (the bench's caller may not vouch for an address): the service
        mails it a verification after the reply."""
        number = next(self._numbers)
        email = f"capacity-{self._run}-{number}@bench.example.com"
        request = pb.RegisterUserRequest(
            email=email, password=PASSWORDS[0], first_name="Capacity", last_name=f"User {number}"
        )
        reply = await self._stub.RegisterUser(request, timeout=self._timeout)
        return Account(reply.id, email, PASSWORDS[0], reply.version)

    async def _register_and_mail(self) -> None:
        """RegisterUser measured until its verification mail is out."""
        account = await self.register()
        await self._mail_to(account.email)

    async def _verified(self) -> Account:
        """A new user whose address is verified, as sign-in needs in production (its item then
        holds no pending verification)."""
        account = await self.register()
        mail = await self._mail_to(account.email)
        request = pb.VerifyEmailRequest(token=link_token(mail))
        reply = await self._stub.VerifyEmail(request, timeout=self._timeout)
        account.version = reply.version
        return account

    async def _mail_to(self, address: str) -> EmailMessage:
        try:
            async with asyncio.timeout(MAIL_TIMEOUT_SECONDS):
                return await self._outbox.next_to(address)
        except TimeoutError:
            raise RuntimeError(f"no mail to {address} in {MAIL_TIMEOUT_SECONDS} s") from None

    async def _prepare(self, scenario: Scenario) -> Measured:
        """The measured call of a scenario of no sessions, on what it needs prepared unmeasured
        (a user with a pending verification or email change, and the mail that carries it)."""
        if scenario.rpc == "RegisterUser":
            return self._register_and_mail
        if scenario.rpc == "ListUsers":
            return self._list_users
        if scenario.rpc == "RequestEmailChange":  # asked by the owner of an account in use
            verified = await self._verified()
            return lambda: self._request_email_change(verified)
        if scenario.rpc == "ConfirmEmailChange":
            confirm = await self._request_email_change(await self._verified())
            token = link_token(confirm)
            return lambda: self._stub.ConfirmEmailChange(
                pb.ConfirmEmailChangeRequest(token=token), timeout=self._timeout
            )
        if scenario.variant == CHALLENGED:
            totp = await self._with_totp()
            return lambda: self._challenge(totp)
        if scenario.rpc == "CompleteSignIn":
            return await self._complete_sign_in(scenario.variant)
        account = await self.register()
        mail = await self._mail_to(account.email)
        if scenario.rpc == "VerifyEmail":
            if scenario.variant == BY_TOKEN:
                request = pb.VerifyEmailRequest(token=link_token(mail))
            else:
                code = verification_code(mail)
                if scenario.variant == WRONG_CODE:
                    code = f"{(int(code) + 1) % 10**6:06d}"
                request = pb.VerifyEmailRequest(email=account.email, code=code)
            return lambda: self._stub.VerifyEmail(request, timeout=self._timeout)
        if scenario.rpc == "ResendVerification":
            return lambda: self._resend(account)
        raise ValueError(f"no preparation for {scenario.name}")

    async def _with_totp(self) -> _TotpAccount:
        """A verified user with TOTP on (its enrollment spent this time step's code)."""
        account = await self._verified()
        began = await self._stub.BeginTotpEnrollment(
            pb.BeginTotpEnrollmentRequest(user_id=account.id), timeout=self._timeout
        )
        request = pb.ConfirmTotpEnrollmentRequest(
            user_id=account.id, code=pyotp.TOTP(began.secret).now()
        )
        confirmed = await self._stub.ConfirmTotpEnrollment(request, timeout=self._timeout)
        await self._mail_to(account.email)  # the notice of the added factor
        return _TotpAccount(account, began.secret, tuple(confirmed.recovery_codes))

    async def _challenge(self, totp: _TotpAccount) -> str:
        request = pb.AuthenticateRequest(email=totp.account.email, password=totp.account.password)
        reply = await self._stub.Authenticate(request, timeout=self._timeout)
        if not reply.HasField("challenge"):
            raise RuntimeError("a user with TOTP on signed in without a challenge")
        return reply.challenge.challenge_token

    async def _complete_sign_in(self, variant: str) -> Measured:
        """CompleteSignIn on a fresh challenge: with the app's next code (this step's was spent
        by the enrollment), a recovery code, or a wrong code (then UNAUTHENTICATED)."""
        totp = await self._with_totp()
        request = pb.CompleteSignInRequest(challenge_token=await self._challenge(totp))
        next_code = pyotp.TOTP(totp.secret).at(time.time() + 30)
        if variant == TOTP_CODE:
            request.totp_code = next_code
        elif variant == RECOVERY_CODE:
            request.recovery_code = totp.recovery_codes[0]
        else:
            request.totp_code = f"{(int(next_code) + 1) % 10**6:06d}"
        return lambda: self._stub.CompleteSignIn(request, timeout=self._timeout)

    async def _resend(self, account: Account) -> None:
        """The reply comes before the lookup and the write: measured until the mail is out."""
        request = pb.ResendVerificationRequest(email=account.email)
        await self._stub.ResendVerification(request, timeout=self._timeout)
        await self._mail_to(account.email)

    async def _request_email_change(self, account: Account) -> EmailMessage:
        """Asks to move ``account`` to a new address; the mail with the confirm link (sent, with
        the notice to the old address, after the reply)."""
        new_email = account.email.replace("@", "-new@", 1)
        request = pb.RequestEmailChangeRequest(
            id=account.id, new_email=new_email, expected_version=account.version
        )
        await self._stub.RequestEmailChange(request, timeout=self._timeout)
        confirm = await self._mail_to(new_email)
        await self._mail_to(account.email)  # the notice that cancels
        return confirm

    def _call(self, scenario: Scenario, account: Account) -> Measured:
        calls: dict[str, Callable[[Account], Awaitable[Any]]] = {
            "GetUser": self._get_user,
            "GetUserByEmail": self._get_user_by_email,
            "Authenticate": self._wrong_sign_in if scenario.variant == WRONG else self._sign_in,
            "RefreshSession": self._refresh,
            "LogoutAll": self._logout_all,
            "DisableUser": self._disable,
            "ChangePassword": self._change_password,
            "ListSessions": self._list_sessions,
            "EndSession": self._end_session,
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

    async def _list_sessions(self, account: Account) -> None:
        request = pb.ListSessionsRequest(user_id=account.id)
        reply = await self._stub.ListSessions(request, timeout=self._timeout)
        listed, held = len(reply.sessions), len(account.sessions)
        if listed != held:
            raise RuntimeError(f"{listed} sessions listed, not the {held} the user holds")

    async def _end_session(self, account: Account) -> None:
        """Ends the oldest session, as a caller with the sessions:admin role would (no
        x-user-token; the development profile authenticates no caller)."""
        session, _ = account.sessions.pop(0)
        request = pb.EndSessionRequest(user_id=account.id, session_id=session)
        await self._stub.EndSession(request, timeout=self._timeout)

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
