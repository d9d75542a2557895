"""In-memory fakes of the domain's ports, with the same conditional-write semantics as DynamoDB."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyotp

from domain.errors import ConcurrentWrite, EmailAlreadyRegistered, UserNotFound, VersionConflict
from domain.event_cursors import stream_key
from domain.events import DomainEvent, RecordedEvent
from domain.ports import (
    AccessToken,
    EmailChangeMail,
    EmailChangeNoticeMail,
    LegacyUser,
    LockNoticeMail,
    LockNotices,
    PasswordResetMail,
    SecondFactorNoticeMail,
    SessionRepository,
    StoredUserPage,
    UnitOfWork,
    UserRepository,
    VerificationMail,
    VerificationMailing,
)
from domain.second_factors import NewTotpSecret, SealedSecret
from domain.user import User
from domain.values import Email, Password, Session, UserId


def _copy(user: User) -> User:
    return dataclasses.replace(user, events=[], touched=False)


class InMemoryStore:
    """The shared 'table': users and their revisions by id, the email guard (email -> id),
    each user's recorded events (user id -> events in sequence order, kept after a delete), and
    each user's sessions (user id -> (epoch, session id) -> session; old epochs stay, as until
    DynamoDB's TTL deletes them)."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.sessions: dict[str, dict[tuple[int, str], Session]] = {}
        self.revisions: dict[str, int] = {}
        self.emails: dict[str, str] = {}
        self.events: dict[str, list[RecordedEvent]] = {}
        self.commits = 0
        self.shadow_logins = 0
        self.session_reads = 0  # calls of the SessionRepository's reads

    def events_of(self, user_id: UserId | str) -> list[DomainEvent]:
        """The events recorded for a user, in sequence order, without their records."""
        return [recorded.event for recorded in self.events.get(str(user_id), [])]

    def event_seq(self, user_id: str) -> int:
        """The sequence number of the user's last event (0: none), as EventSeq holds it."""
        recorded = self.events.get(user_id)
        return recorded[-1].sequence if recorded else 0

    def copy(self) -> InMemoryStore:
        trial = InMemoryStore()
        trial.users, trial.emails = dict(self.users), dict(self.emails)
        trial.revisions = dict(self.revisions)
        trial.events = {user_id: list(events) for user_id, events in self.events.items()}
        trial.sessions = {user_id: dict(held) for user_id, held in self.sessions.items()}
        return trial

    def live_sessions(self, user_id: UserId | str) -> list[Session]:
        """The sessions of the user's current epoch (expired ones included), oldest first."""
        user = self.users.get(str(user_id))
        if user is None:
            return []
        held = self.sessions.get(str(user_id), {})
        mine = [s for (epoch, _), s in held.items() if epoch == user.session_epoch]
        return sorted(mine, key=lambda s: s.created_at)


# A staged write: applied to a trial copy of the store at commit time (``recorded_at``).
_Write = Callable[[InMemoryStore, datetime], None]
# The write, what to do once it landed, and the events it records.
_Staged = tuple[_Write, Callable[[], None], tuple[DomainEvent, ...]]


class FakeUserRepository(UserRepository):
    """Repository over an InMemoryStore; writes are staged on the unit of work."""

    def __init__(self, store: InMemoryStore, staged: list[_Staged]) -> None:
        super().__init__()
        self._store = store
        self._staged = staged
        self._revisions: dict[str, int] = {}
        self._event_seqs: dict[str, int] = {}

    async def _get_by_id(self, user_id: UserId) -> User | None:
        await asyncio.sleep(0)  # yield like real I/O, so concurrent use cases interleave
        user = self._store.users.get(user_id.value)
        return self._read(user) if user else None

    def _read(self, user: User) -> User:
        self._revisions[user.id.value] = self._store.revisions[user.id.value]
        self._event_seqs[user.id.value] = self._store.event_seq(user.id.value)
        return _copy(user)

    def _landed(self, user: User, version: int, revision: int, events: int) -> None:
        user.version, user.touched = version, False
        self._revisions[user.id.value] = revision
        self._landed_events(user, events)

    def _landed_events(self, user: User, count: int) -> None:
        del user.events[:count]
        self._event_seqs[user.id.value] = self._event_seqs.get(user.id.value, 0) + count

    def _record_events(self, user: User) -> Callable[[InMemoryStore, datetime], None]:
        """Stores the user's pending events after the EventSeq as read, as DynamoDB would:
        a sequence number already taken (by a concurrent writer) is a VersionConflict."""
        pending = tuple(user.events)
        after = self._event_seqs.get(user.id.value, 0)
        user_id, version = user.id.value, user.version

        def record(store: InMemoryStore, recorded_at: datetime) -> None:
            if store.event_seq(user_id) > after:
                raise VersionConflict(version)
            store.events.setdefault(user_id, []).extend(
                RecordedEvent(
                    event, sequence, recorded_at, stream_key(recorded_at, user_id, sequence)
                )
                for sequence, event in enumerate(pending, start=after + 1)
            )

        return record

    async def _get_by_email(self, email: Email) -> User | None:
        user_id = self._store.emails.get(email.normalized)
        return await self._get_by_id(UserId(user_id)) if user_id else None

    async def _get_many(self, user_ids: list[UserId]) -> dict[UserId, User]:
        await asyncio.sleep(0)
        stored = ((user_id, self._store.users.get(user_id.value)) for user_id in user_ids)
        return {user_id: self._read(user) for user_id, user in stored if user is not None}

    async def shadow_failed_login(self) -> None:
        self._store.shadow_logins += 1
        await asyncio.sleep(0)

    async def _list_page(self, limit: int, after: UserId | None) -> StoredUserPage:
        ids = sorted(self._store.users)
        start = 0
        if after is not None:
            start = next((i for i, key in enumerate(ids) if key > after.value), len(ids))
        chunk = ids[start : start + limit]
        more = start + limit < len(ids)
        return StoredUserPage(
            [self._read(self._store.users[key]) for key in chunk],
            UserId(chunk[-1]) if more else None,
        )

    async def _add(self, user: User) -> None:
        snapshot = _copy(user)
        snapshot.version = 1
        record = self._record_events(user)

        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            if snapshot.email.normalized in store.emails:
                raise EmailAlreadyRegistered()
            if snapshot.id.value in store.users:
                raise RuntimeError("user id collision")
            store.users[snapshot.id.value] = snapshot
            store.revisions[snapshot.id.value] = 1
            store.emails[snapshot.email.normalized] = snapshot.id.value
            record(store, recorded_at)

        events = tuple(user.events)
        self._staged.append((write, partial(self._landed, user, 1, 1, len(events)), events))

    async def _update(self, user: User, previous_email: Email, *, visible: bool) -> None:
        revision = self._revisions[user.id.value]
        snapshot = _copy(user)
        snapshot.version = user.version + 1 if visible else user.version
        record = self._record_events(user)

        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            stored = store.users.get(snapshot.id.value)
            if stored is None or store.revisions[snapshot.id.value] != revision:
                raise VersionConflict(user.version, stored.version if stored else None)
            if snapshot.email.normalized != previous_email.normalized:
                if snapshot.email.normalized in store.emails:
                    raise EmailAlreadyRegistered()
                del store.emails[previous_email.normalized]
                store.emails[snapshot.email.normalized] = snapshot.id.value
            store.users[snapshot.id.value] = snapshot
            store.revisions[snapshot.id.value] = revision + 1
            record(store, recorded_at)

        events = tuple(user.events)
        landed = partial(self._landed, user, snapshot.version, revision + 1, len(events))
        self._staged.append((write, landed, events))

    async def _delete(self, user: User, stored_email: Email) -> None:
        revision = self._revisions[user.id.value]
        user_id = user.id.value
        record = self._record_events(user)

        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            stored = store.users.get(user_id)
            if stored is None:
                raise UserNotFound(f"no user with id {user_id}")
            if store.revisions[user_id] != revision:
                raise VersionConflict(user.version, stored.version)
            del store.users[user_id]
            del store.revisions[user_id]
            store.emails.pop(stored_email.normalized, None)
            record(store, recorded_at)

        events = tuple(user.events)
        self._staged.append((write, partial(self._landed_events, user, len(events)), events))


def _noop() -> None:
    pass


class FakeSessionRepository(SessionRepository):
    """Sessions in an InMemoryStore, by user and (epoch, id); writes staged on the unit of work,
    with the conditions DynamoDB checks."""

    def __init__(self, store: InMemoryStore, staged: list[_Staged]) -> None:
        self._store = store
        self._staged = staged

    async def current(self, user: User) -> list[Session]:
        self._store.session_reads += 1
        await asyncio.sleep(0)
        held = self._store.sessions.get(user.id.value, {})
        return [s for (epoch, _), s in sorted(held.items()) if epoch == user.session_epoch]

    async def get(self, user: User, session_id: str) -> Session | None:
        self._store.session_reads += 1
        await asyncio.sleep(0)
        return self._store.sessions.get(user.id.value, {}).get((user.session_epoch, session_id))

    async def add(self, user: User, session: Session) -> None:
        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            held = store.sessions.setdefault(user.id.value, {})
            if (session.epoch, session.session_id) in held:
                raise RuntimeError("session id collision")
            held[session.epoch, session.session_id] = session

        self._staged.append((write, _noop, ()))

    async def remove(self, user: User, session: Session) -> None:
        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            store.sessions.get(user.id.value, {}).pop((session.epoch, session.session_id), None)

        self._staged.append((write, _noop, ()))

    async def rotate(self, user: User, before: Session, after: Session) -> None:
        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            held = store.sessions.get(user.id.value, {})
            stored = held.get((before.epoch, before.session_id))
            if stored is None or stored.token_hash != before.token_hash:
                raise ConcurrentWrite()
            held[after.epoch, after.session_id] = after

        self._staged.append((write, _noop, ()))

    async def move(self, user: User, before: Session, after: Session) -> None:
        def write(store: InMemoryStore, recorded_at: datetime) -> None:
            held = store.sessions.setdefault(user.id.value, {})
            stored = held.pop((before.epoch, before.session_id), None)
            if stored is None or stored.token_hash != before.token_hash:
                raise ConcurrentWrite()  # refreshed or ended since it was read
            held[after.epoch, after.session_id] = after

        self._staged.append((write, _noop, ()))


class FakeUnitOfWork(UnitOfWork):
    """Applies staged writes, their events included, all-or-nothing on commit; records whether
    it committed, and tells ``on_committed`` the events that landed (as DynamoUnitOfWork)."""

    def __init__(
        self,
        store: InMemoryStore | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_committed: Callable[[Sequence[DomainEvent]], None] | None = None,
    ) -> None:
        self.store = store or InMemoryStore()
        self._staged: list[_Staged] = []
        self._clock = clock
        self._on_committed = on_committed
        self.users = FakeUserRepository(self.store, self._staged)
        self.sessions = FakeSessionRepository(self.store, self._staged)
        self.committed = False

    async def commit(self) -> None:
        trial = self.store.copy()
        recorded_at = self._clock()
        for write, _, _ in self._staged:
            write(trial, recorded_at)  # raises before anything reaches the real store
        self.store.users, self.store.emails = trial.users, trial.emails
        self.store.revisions, self.store.events = trial.revisions, trial.events
        self.store.sessions = trial.sessions
        self.store.commits += 1
        landed = [event for _, _, events in self._staged for event in events]
        for _, after_commit, _ in self._staged:
            after_commit()
        self._staged.clear()
        self.committed = True
        if self._on_committed is not None:
            self._on_committed(landed)

    async def rollback(self) -> None:
        self._staged.clear()


class FakePasswordHasher:
    """Reversible stand-in for argon2, for fast unit tests only.

    Hashes made with ``prefix`` "old$" count as weaker than today's, so re-hashing shows.
    """

    dummy_hash = "fake$dummy"

    def __init__(self) -> None:
        self.verified: list[str] = []

    async def hash(self, password: Password) -> str:
        return "fake$" + password.value[::-1]

    async def verify(self, password_hash: str, password: Password) -> bool:
        self.verified.append(password_hash)
        scheme, _, body = password_hash.partition("$")
        return scheme in {"fake", "old"} and body == password.value[::-1]

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith("fake$")


class FakeAccessTokenIssuer:
    """Issues readable stand-in access tokens: 'access:<user id>:<session id>:<n>'."""

    def __init__(self, lifetime_seconds: int = 900) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.issued = 0
        # The email_verified and amr claims of each token issued, in order.
        self.email_verified_claims: list[bool] = []
        self.amr_claims: list[tuple[str, ...]] = []
        # The auth_time claim of each token issued (now when the caller gave none), in order.
        self.auth_time_claims: list[datetime] = []

    def issue(
        self,
        *,
        user_id: str,
        session_id: str,
        now: datetime,
        email_verified: bool = False,
        amr: tuple[str, ...] = ("pwd",),
        auth_time: datetime | None = None,
    ) -> AccessToken:
        self.issued += 1
        self.email_verified_claims.append(email_verified)
        self.amr_claims.append(amr)
        self.auth_time_claims.append(now if auth_time is None else auth_time)
        return AccessToken(f"access:{user_id}:{session_id}:{self.issued}", self.lifetime_seconds)


class RecordingNotifier:
    """Keeps every message it is asked to send, by kind."""

    def __init__(self) -> None:
        self.sent: list[PasswordResetMail] = []
        self.lock_notices: list[LockNoticeMail] = []
        self.verifications: list[VerificationMail] = []
        self.email_changes: list[EmailChangeMail] = []
        self.email_change_notices: list[EmailChangeNoticeMail] = []
        self.second_factor_notices: list[SecondFactorNoticeMail] = []

    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        self.sent.append(mail)

    async def send_lock_notice(self, mail: LockNoticeMail) -> None:
        self.lock_notices.append(mail)

    async def send_verification(self, mail: VerificationMail) -> None:
        self.verifications.append(mail)

    async def send_email_change(self, mail: EmailChangeMail) -> None:
        self.email_changes.append(mail)

    async def send_email_change_notice(self, mail: EmailChangeNoticeMail) -> None:
        self.email_change_notices.append(mail)

    async def send_second_factor_notice(self, mail: SecondFactorNoticeMail) -> None:
        self.second_factor_notices.append(mail)


class FakeTotpCodes:
    """domain.ports.TotpCodes with real RFC 6238 codes (pyotp) and a fake seal: the secret behind
    "fake-sealed:" in clear, so tests can compute codes (``code_at``). Never for a server."""

    PREFIX = "fake-sealed:"

    def new_secret(self) -> NewTotpSecret:
        secret = pyotp.random_base32()
        return NewTotpSecret(secret, SealedSecret(self.PREFIX + secret))

    def provisioning_uri(self, secret: NewTotpSecret, account_name: str) -> str:
        return pyotp.TOTP(secret.secret).provisioning_uri(name=account_name, issuer_name="Test")

    def matching_step(
        self, sealed: SealedSecret, code: str, now: datetime, *, after_step: int | None
    ) -> int | None:
        totp = pyotp.TOTP(self.unseal(sealed))
        current = totp.timecode(now)
        for step in (current - 1, current, current + 1):
            if after_step is not None and step <= after_step:
                continue
            if hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    def unseal(self, sealed: SealedSecret) -> str:
        if not sealed.value.startswith(self.PREFIX):
            raise ValueError("not sealed by FakeTotpCodes")
        return sealed.value.removeprefix(self.PREFIX)

    def code_at(self, sealed: SealedSecret, moment: datetime) -> str:
        """The code an authenticator app shows at ``moment`` for this secret."""
        return pyotp.TOTP(self.unseal(sealed)).at(moment)


class FixedClock:
    """A clock that says what it is told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class DeferredTasks:
    """TaskRunner that holds the work until a test runs it (as it would after the reply)."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Coroutine[Any, Any, None]]] = []

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str, key: str | None = None) -> None:
        self.pending.append((name, work))

    async def run_all(self) -> None:
        while self.pending:
            _, work = self.pending.pop(0)
            await work

    def close(self) -> list[str]:
        """Drop the work no test ran, closing each coroutine (so none is left never awaited);
        the names of what was dropped."""
        dropped = [name for name, _ in self.pending]
        for _, work in self.pending:
            work.close()
        self.pending.clear()
        return dropped


def recorded_lock_notices() -> LockNotices:
    """Lock notices kept by a RecordingNotifier, in work held by DeferredTasks until run."""
    return LockNotices(RecordingNotifier(), DeferredTasks())


class DroppedTasks:
    """TaskRunner that drops every piece of work unstarted (as a runner at its bound does), and
    keeps the names of what it dropped: for tests to which the work after the reply is beside
    the point."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str, key: str | None = None) -> None:
        self.dropped.append(name)
        work.close()


def recorded_verification_mailing() -> VerificationMailing:
    """Verification mail kept by a RecordingNotifier, in work held by DeferredTasks until run."""
    return VerificationMailing(RecordingNotifier(), DeferredTasks())


def unsent_verification_mailing() -> VerificationMailing:
    """Verification mail dropped unsent: for tests of something else that register users."""
    return VerificationMailing(RecordingNotifier(), DroppedTasks())


class FakeLegacyAuthenticator:
    """The old system's password check, in memory: ``accounts`` maps an email (as the old
    system holds it) to its password and profile; every question asked is recorded.
    ``hold`` (when set) keeps each answer back until it is set, so concurrent first sign-ins
    can be lined up."""

    def __init__(self) -> None:
        self.accounts: dict[str, tuple[str, LegacyUser]] = {}
        self.asked: list[str] = []
        self.looked_up: list[str] = []  # asked at password reset, with no password
        self.hold: asyncio.Event | None = None
        self._asked_more = asyncio.Condition()

    def add(
        self, email: str, password: str, *, user_id: str = "", confirmed: bool = True, **names: str
    ) -> LegacyUser:
        user = LegacyUser(
            id=user_id or str(UserId.new()),
            email=email,
            first_name=names.get("first_name", "Ada"),
            last_name=names.get("last_name", "Lovelace"),
            email_confirmed=confirmed,
        )
        self.accounts[email.casefold()] = (password, user)
        return user

    async def until_asked(self, times: int) -> None:
        """Returns once the old system has been asked ``times`` questions in all."""
        async with self._asked_more:
            await self._asked_more.wait_for(lambda: len(self.asked) + len(self.looked_up) >= times)

    async def check(self, email: str, password: Password) -> LegacyUser | None:
        self.asked.append(email)
        async with self._asked_more:
            self._asked_more.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        known = self.accounts.get(email.casefold())
        if known is None or not hmac.compare_digest(known[0].encode(), password.value.encode()):
            return None
        return known[1]

    async def lookup(self, email: str) -> LegacyUser | None:
        self.looked_up.append(email)
        async with self._asked_more:
            self._asked_more.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        known = self.accounts.get(email.casefold())
        return None if known is None else known[1]
