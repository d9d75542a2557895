"""Use cases of sessions: sign in, refresh, log out; each decision is made by the User aggregate."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from domain.errors import (
    AccountDisabled,
    AuthenticationFailed,
    ConcurrentRefresh,
    EmailNotVerified,
    InvalidRefreshToken,
    InvalidValue,
    UserNotFound,
    VersionConflict,
)
from domain.events import SessionEndReason
from domain.policies import AuthPolicy, SessionPolicy
from domain.ports import (
    AccessToken,
    AccessTokenIssuer,
    Clock,
    LegacyAuthenticator,
    LockNoticeMail,
    LockNotices,
    PasswordHasher,
    UnitOfWork,
)
from domain.secret_tokens import TokenLookup, parse_token
from domain.sign_in_challenges import IssuedSignInChallenge
from domain.use_cases.lazy_migration import migrate_on_sign_in
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.validation import Violations
from domain.user import RefreshResult, SessionStart, User, UserStatus
from domain.values import (
    AMR_PASSWORD,
    ClientDetails,
    Email,
    Password,
    Requester,
    Session,
    UserId,
    parse_session_id,
)

log = logging.getLogger(__name__)

# Counting a failure is retried more than other writes: a burst of attempts on one account all
# count on one item, and an attempt left uncounted is one the lock-out does not see.
FAILURE_COUNT_ATTEMPTS = 7


@dataclass(frozen=True, repr=False)
class SessionTokens:
    """What a caller gets on sign-in or refresh: an access token and the next refresh token."""

    user: User
    session_id: str
    access_token: AccessToken
    refresh_token: str

    def __repr__(self) -> str:
        return f"SessionTokens(user={self.user.id}, session_id={self.session_id}, ***)"


async def authenticate(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    issuer: AccessTokenIssuer,
    clock: Clock,
    policy: AuthPolicy,
    notices: LockNotices,
    *,
    email: str,
    password: str,
    user_agent: str = "",
    ip_address: str = "",
    device_label: str = "",
    legacy: LegacyAuthenticator | None = None,
) -> SessionTokens | SignInChallenged:
    """Sign in with email and password: the new session's tokens; or, when the user has a
    second factor, a challenge instead (no session yet: CompleteSignIn opens it).

    With ``legacy`` (the lazy-migration hook), an unknown email is first asked of the old
    system, and the user it vouches for is created here (domain.use_cases.lazy_migration)."""
    with Violations() as check:
        parsed_email = check.parse("email", Email.parse, email)
        presented = check.parse("password", Password.presented, password)
        client = parse_client(check, user_agent, ip_address, device_label)
    async with uow:
        user = await uow.users.get_by_email(parsed_email)
    if user is None and legacy is not None:
        # The dummy check runs while the old system is asked: when it answers within a hash's
        # time, an unknown email takes as long as without the hook (a wrong password's time).
        dummy = asyncio.ensure_future(hasher.verify(hasher.dummy_hash, presented))
        try:
            user = await migrate_on_sign_in(
                uow, hasher, clock, legacy, email=parsed_email, password=presented, typed=password
            )
        finally:
            await asyncio.gather(dummy, return_exceptions=True)
        dummy.result()  # a refused hash (the pool's queue full) is the answer, as without it
        if user is None:
            await uow.users.shadow_failed_login()
            raise AuthenticationFailed()
    if user is None:
        # The same work as a wrong password (a hash check and the store round trips of counting
        # a failure), so the time taken does not tell which emails have accounts.
        await hasher.verify(hasher.dummy_hash, presented)
        await uow.users.shadow_failed_login()
        raise AuthenticationFailed()
    first_read: User = user
    verified_hash = user.password_hash
    if not await password_accepted(uow, user, hasher, presented, clock, policy, notices):
        raise AuthenticationFailed()
    # Only a caller who proved the password learns the account's state.
    check_may_sign_in(user)
    check_verified(user, policy)
    rehashed = await hasher.hash(presented) if hasher.needs_rehash(verified_hash) else None

    async def open_session(attempt: int) -> SessionTokens | SignInChallenged:
        async with uow:
            # The first attempt writes the user read above (the unit of work checks its
            # revision); a retry reads it again, since another write landed in between.
            user = first_read if not attempt else await uow.users.get_by_id(first_read.id)
            if user is None:
                raise AuthenticationFailed()  # deleted while we were checking the password
            now = clock()
            if user.password_hash != verified_hash:
                raise AuthenticationFailed()  # the password changed while we were checking it
            if attempt:
                # The write we lost to may have disabled the account, or begun a delay.
                check_may_sign_in(user)
                check_verified(user, policy)
                if user.lock_remaining(now) is not None:
                    raise _WaitBegan(user)  # refused and counted, as any attempt in a wait
            if rehashed is not None:
                user.upgrade_password_hash(rehashed)
            if user.sign_in_factors():
                # The password alone succeeds at nothing yet: no failure count is reset, no
                # session read or opened. One write of the user item, its revision checked.
                issued = user.issue_sign_in_challenge(now, policy.sign_in_challenges.lifetime)
                await uow.users.update(user)
                await uow.commit()
                return SignInChallenged(user, issued)
            user.record_successful_login()
            # Sessions are read only now: a failed sign-in never gets this far, and costs none.
            start = await write_new_session(uow, user, now, policy.sessions, client, AMR_PASSWORD)
        return issue_session_tokens(issuer, user, start, now)

    try:
        return await retry_on_conflict(open_session)
    except _WaitBegan as began:
        await record_failed_login(uow, began.user, clock, policy, notices)
        raise AuthenticationFailed() from None


@dataclass(frozen=True, repr=False)
class SignInChallenged:
    """What a caller gets on sign-in, instead of tokens, when the password was right and the
    user has a second factor: a challenge that CompleteSignIn answers with one."""

    user: User
    challenge: IssuedSignInChallenge

    def __repr__(self) -> str:
        return f"SignInChallenged(user={self.user.id}, ***)"


def parse_client(
    check: Violations, user_agent: str, ip_address: str, device_label: str
) -> ClientDetails:
    """The client details of a sign-in request, each bad one a violation on ``client.<field>``."""
    return ClientDetails(
        user_agent=check.parse("client.user_agent", ClientDetails.parse_user_agent, user_agent),
        ip_address=check.parse("client.ip_address", ClientDetails.parse_ip_address, ip_address),
        device_label=check.parse(
            "client.device_label", ClientDetails.parse_device_label, device_label
        ),
    )


async def write_new_session(
    uow: UnitOfWork,
    user: User,
    now: datetime,
    policy: SessionPolicy,
    client: ClientDetails,
    amr: tuple[str, ...],
) -> SessionStart:
    """Open a session for ``user`` (whose sign-in was proven by ``amr``) in one write with the
    user, inside the caller's unit of work: the user's revision check serializes concurrent
    sign-ins, and the loser reads the user and its sessions again. Sessions beyond the limit, and
    expired ones, end in the same write."""
    current = await uow.sessions.current(user)
    start = user.start_session(now, policy, current, client, amr=amr)
    await uow.users.update(user)
    await uow.sessions.add(user, start.session)
    for ended in start.ended:
        await uow.sessions.remove(user, ended)
    await uow.commit()
    return start


def issue_session_tokens(
    issuer: AccessTokenIssuer, user: User, start: SessionStart, now: datetime
) -> SessionTokens:
    """The tokens of a session just opened: its access token (claims: the session's amr, and its
    sign-in time as auth_time) and its first refresh token."""
    session = start.session
    access = issuer.issue(
        user_id=user.id.value,
        session_id=session.session_id,
        now=now,
        email_verified=user.email_verified,
        amr=session.amr,
        auth_time=session.created_at,
    )
    return SessionTokens(user, session.session_id, access, start.token.value)


class _WaitBegan(Exception):
    """A wait began (other attempts failed) while this sign-in's password was being checked."""

    def __init__(self, user: User) -> None:
        super().__init__("a wait began meanwhile")
        self.user = user


def check_may_sign_in(user: User) -> None:
    """AccountDisabled, for a caller who has just proved the password."""
    if user.status is UserStatus.DISABLED:
        raise AccountDisabled()


def check_verified(user: User, policy: AuthPolicy) -> None:
    """EmailNotVerified when sign-in needs a verified address and the user's is not, for a
    caller who has just proved the password (no one else learns it)."""
    if policy.verification.required_for_sign_in and not user.email_verified:
        raise EmailNotVerified()


async def password_accepted(
    uow: UnitOfWork,
    user: User,
    hasher: PasswordHasher,
    presented: Password,
    clock: Clock,
    policy: AuthPolicy,
    notices: LockNotices,
) -> bool:
    """Whether ``presented`` is the user's password and sign-in is not being delayed; when not,
    the attempt is counted as a failure before this returns.

    No oracle: while a delay runs, every password, the right one included, is refused after the
    same hash check and the same store write as a wrong one, so neither the reply, nor its time,
    nor the store's calls tell whether it was right.
    """
    delayed = user.lock_remaining(clock()) is not None
    matches = await hasher.verify(user.password_hash, presented)
    if matches and not delayed:
        return True
    # Counted before the reply: the next attempt, on any replica, sees it.
    await record_failed_login(uow, user, clock, policy, notices)
    return False


async def refresh_session(
    uow: UnitOfWork,
    issuer: AccessTokenIssuer,
    clock: Clock,
    policy: AuthPolicy,
    *,
    refresh_token: str,
) -> SessionTokens:
    lookup = _parse_refresh_token(refresh_token)
    if lookup is None:
        raise InvalidRefreshToken()

    async def rotate(attempt: int) -> SessionTokens:
        async with uow:
            user = await uow.users.get_by_id(lookup.user_id)
            if user is None or user.status is UserStatus.DISABLED:
                raise InvalidRefreshToken()
            session = await _session_of(uow, user, lookup)
            now = clock()
            # Finding our token just rotated means a concurrent refresh won the race: exactly one
            # of them may rotate it, and the loser must not count as reuse.
            outcome = user.refresh_session(session, lookup, now, policy.sessions)
            if outcome.result is RefreshResult.RACED:
                raise ConcurrentRefresh()
            if outcome.result is RefreshResult.UNKNOWN:
                raise InvalidRefreshToken()
            assert outcome.previous is not None
            if outcome.result is RefreshResult.ROTATED:
                assert outcome.session is not None
                # One conditional write on the session alone: of concurrent refreshes with one
                # token exactly one lands; a loser reads again and finds the token rotated.
                await uow.sessions.rotate(user, outcome.previous, outcome.session)
            else:
                await uow.sessions.remove(user, outcome.previous)
                await uow.users.update(user)  # its SessionRevoked event
            await uow.commit()
        if outcome.result is not RefreshResult.ROTATED:
            raise InvalidRefreshToken()  # the session expired or its token was reused: now ended
        assert outcome.session and outcome.token
        session_id = outcome.session.session_id
        access = issuer.issue(
            user_id=user.id.value,
            session_id=session_id,
            now=now,
            email_verified=user.email_verified,
            amr=outcome.session.amr,
            # The sign-in's time, not the refresh's: a refresh token is no proof of a recent
            # sign-in (a stolen one keeps minting tokens), see server.rpc_access's recent_sign_in.
            auth_time=outcome.session.created_at,
        )
        return SessionTokens(user, session_id, access, outcome.token.value)

    return await retry_on_conflict(rotate)


async def _session_of(uow: UnitOfWork, user: User, lookup: TokenLookup) -> Session | None:
    """The session a refresh token names, read by key; a token of the older form names none,
    and is looked for among the user's current sessions."""
    if lookup.session_id is not None:
        return await uow.sessions.get(user, lookup.session_id)
    return user.session_holding(await uow.sessions.current(user), lookup.token_hash)


async def logout(uow: UnitOfWork, clock: Clock, *, refresh_token: str) -> None:
    """End the token's session; an unknown or ended one is fine (RFC 7009)."""
    lookup = _parse_refresh_token(refresh_token)
    if lookup is None:
        return

    async def end(attempt: int) -> None:
        async with uow:
            user = await uow.users.get_by_id(lookup.user_id)
            if user is None:
                return
            session = await _session_of(uow, user, lookup)
            if session is None or user.session_holding([session], lookup.token_hash) is None:
                return
            user.end_session(session, SessionEndReason.LOGOUT, clock())
            await uow.sessions.remove(user, session)
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(end)


async def logout_all(uow: UnitOfWork, clock: Clock, policy: SessionPolicy, *, user_id: str) -> int:
    """End every session of a user; how many were live."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)

    async def end_all(attempt: int) -> int:
        async with uow:
            user = await uow.users.require(parsed_id)
            current = await uow.sessions.current(user)
            ended = user.end_sessions(clock(), policy, current, SessionEndReason.LOGOUT_ALL)
            if ended.count:
                await uow.users.update(user)
                await uow.commit()
        return ended.count

    return await retry_on_conflict(end_all)


@dataclass(frozen=True)
class SessionView:
    """A live session as ListSessions shows it: never its token or a hash of one."""

    session_id: str
    created_at: datetime
    last_used_at: datetime
    ends_at: datetime  # unless used again
    client: ClientDetails


async def list_sessions(
    uow: UnitOfWork, clock: Clock, policy: SessionPolicy, *, user_id: str
) -> list[SessionView]:
    """The user's live sessions, newest first; read strongly consistent."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
    async with uow:
        user = await uow.users.require(parsed_id)
        current = await uow.sessions.current(user)
    return [
        SessionView(
            s.session_id, s.created_at, s.last_used_at, s.ends_at(policy.idle_lifetime), s.client
        )
        for s in user.live_sessions(current, clock(), policy)
    ]


async def end_session(
    uow: UnitOfWork,
    clock: Clock,
    policy: SessionPolicy,
    *,
    user_id: str,
    session_id: str,
    by: Requester,
) -> None:
    """End one live session of a user, on the request of ``by``; SessionNotFound when it is not
    one."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        parsed_session = check.parse("session_id", parse_session_id, session_id)

    async def end(attempt: int) -> None:
        async with uow:
            user = await uow.users.require(parsed_id)
            stored = await uow.sessions.get(user, parsed_session)
            ended = user.revoke_session(stored, by, clock(), policy)
            # One write: the session's item goes with the user's, which carries the event and
            # is checked against its revision (a concurrent end of it loses and reads again).
            await uow.sessions.remove(user, ended)
            await uow.users.update(user)
            await uow.commit()

    await retry_on_conflict(end)


def _parse_refresh_token(raw: str) -> TokenLookup | None:
    """The token's lookup; INVALID_ARGUMENT when empty, None when it cannot be one of ours."""
    if not raw.strip():
        with Violations() as check:
            check.add("refresh_token", "must not be empty")
    try:
        return parse_token(raw)
    except InvalidValue:
        return None


async def record_failed_login(
    uow: UnitOfWork, user: User, clock: Clock, policy: AuthPolicy, notices: LockNotices
) -> None:
    """Count a failed attempt against the account, before the reply (so the next attempt, on
    any replica, sees it): one eventless write, the same for every refused password, so the
    store's calls tell nothing. Retried on conflicts; when other writes to the user keep winning
    (a burst of attempts), the attempt is refused all the same, uncounted, rather than answered
    with a different code. If it begins a lock-out, the notice follows after the reply."""

    async def record(attempt: int) -> bool:
        async with uow:
            # A retry reads the user again: another write landed since ``user`` was read.
            current = user if not attempt else await uow.users.require(user.id)
            crossed = current.record_failed_login(clock(), policy.lockout)
            await uow.users.update(current)
            await uow.commit()
        return crossed

    try:
        crossed = await retry_on_conflict(record, attempts=FAILURE_COUNT_ATTEMPTS)
    except UserNotFound:
        return  # deleted meanwhile: nothing left to lock
    except VersionConflict:
        log.warning(
            "a refused sign-in went uncounted: %d concurrent writes to the user won",
            FAILURE_COUNT_ATTEMPTS,
        )
        return
    if crossed:
        notify_lock_later(uow, user.id, clock, policy, notices)


def notify_lock_later(
    uow: UnitOfWork, user_id: UserId, clock: Clock, policy: AuthPolicy, notices: LockNotices
) -> None:
    """After the reply: record AccountLocked and mail the lock notice (a failure just began a
    lock-out)."""
    notices.later.spawn(
        _notify_lock(uow, user_id, clock, policy, notices),
        name="send a lock notice",
        key=f"lock notice:{user_id.value}",
    )


async def _notify_lock(
    uow: UnitOfWork, user_id: UserId, clock: Clock, policy: AuthPolicy, notices: LockNotices
) -> None:
    """After the reply: record AccountLocked with the reset token of the lock notice, then mail
    it. Kept out of the counting write, so the failure that begins a lock-out makes the same
    store calls before its reply as any other."""

    async def record(attempt: int) -> LockNoticeMail | None:
        async with uow:
            current = await uow.users.get_by_id(user_id)
            if current is None:
                return None
            now = clock()
            reset = current.notify_lock(
                now,
                policy.lockout,
                reset_lifetime=policy.password_reset_lifetime,
                mail=policy.security_mail,
            )
            if not current.events:
                return None  # the run of failures ended meanwhile
            await uow.users.update(current)
            await uow.commit()
        if reset is None:
            return None
        return LockNoticeMail(
            to=current.email.value,
            name=current.first_name.value,
            locked_at=now,
            token=reset.value,
            expires_at=now + policy.password_reset_lifetime,
        )

    notice = await retry_on_conflict(record)
    if notice is not None:
        await notices.notifier.send_lock_notice(notice)


async def session_in_force(
    uow: UnitOfWork, clock: Clock, policy: AuthPolicy, *, user_id: str, session_id: str
) -> bool:
    """Whether the session an access token names is still in force: its user exists and is
    active, and the session is of the user's current epoch and not expired. A token outlives
    what ended its session (a logout, a password change, a disable) by up to its lifetime
    unless a verifier asks this; two strongly consistent reads."""
    try:
        parsed = UserId.parse(user_id)
    except InvalidValue:
        return False
    async with uow:
        user = await uow.users.get_by_id(parsed)
        if user is None or user.status is not UserStatus.ACTIVE:
            return False
        session = await uow.sessions.get(user, session_id)
    return session is not None and session.is_live(clock(), policy.sessions.idle_lifetime)
