"""Ports of the use cases: repositories, unit of work, event log, hasher, tokens, notifier,
clock."""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Any, Protocol

from domain.errors import UserNotFound
from domain.events import RecordedEvent, SecondFactorKind
from domain.second_factors import NewTotpSecret, SealedSecret
from domain.user import User
from domain.values import Email, Password, Session, UserId

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class StoredUserPage:
    """One page of users, and where the next page starts (None when there is no more)."""

    users: list[User]
    last_key: UserId | None


class UserRepository(abc.ABC):
    """Reads users at once; stages writes, which land only when the unit of work commits.

    Every write is conditional: ``add`` fails if the id or the email is taken,
    ``update`` and ``delete`` fail (VersionConflict) if the stored user changed in any
    way since it was read, sign-in bookkeeping included. ``user.version`` counts only
    the changes callers can see (``user.touched``): such an update increments it on
    commit; session and lock-out bookkeeping leave it alone, so a token refresh never
    makes a caller's ``expected_version`` stale. The repository remembers the email each
    user had when read, so that an email change moves the uniqueness guard in the same
    atomic write.
    """

    def __init__(self) -> None:
        self._loaded_emails: dict[str, Email] = {}

    async def get_by_id(self, user_id: UserId) -> User | None:
        return self._remember(await self._get_by_id(user_id))

    async def require(self, user_id: UserId) -> User:
        """The user with this id; UserNotFound when there is none."""
        user = await self.get_by_id(user_id)
        if user is None:
            raise UserNotFound(f"no user with id {user_id}")
        return user

    async def get_by_email(self, email: Email) -> User | None:
        return self._remember(await self._get_by_email(email))

    async def get_many(self, user_ids: Collection[UserId]) -> dict[UserId, User]:
        """The users with these ids, by id, read strongly consistent; an id with no user is
        left out, and an id given twice is read once. All or nothing: when the store cannot
        answer for every id, this raises (StorageUnavailable) rather than return fewer."""
        found = await self._get_many(list(dict.fromkeys(user_ids)))
        for user in found.values():
            self._remember(user)
        return found

    async def list_page(self, limit: int, after: UserId | None) -> StoredUserPage:
        page = await self._list_page(limit, after)
        for user in page.users:
            self._remember(user)
        return page

    async def add(self, user: User) -> None:
        await self._add(user)

    @abc.abstractmethod
    async def shadow_failed_login(self) -> None:
        """Spend what counting a failed sign-in costs (a read and a conditional write of the
        store), on an item that never exists: nothing changes. A sign-in with an unknown
        email does this, so that it takes as long as one with a wrong password."""

    async def update(self, user: User) -> None:
        try:
            previous_email = self._loaded_emails[user.id.value]
        except KeyError:
            raise RuntimeError(
                "update() of a user that was not read through this repository"
            ) from None
        await self._update(user, previous_email, visible=user.touched)

    async def delete(self, user: User) -> None:
        if user.id.value not in self._loaded_emails:
            raise RuntimeError("delete() of a user that was not read through this repository")
        await self._delete(user, self._loaded_emails[user.id.value])

    def _remember(self, user: User | None) -> User | None:
        if user is not None:
            self._loaded_emails[user.id.value] = user.email
        return user

    @abc.abstractmethod
    async def _get_by_id(self, user_id: UserId) -> User | None: ...

    @abc.abstractmethod
    async def _get_by_email(self, email: Email) -> User | None: ...

    @abc.abstractmethod
    async def _get_many(self, user_ids: list[UserId]) -> dict[UserId, User]:
        """The users with these distinct ids, by id; any number of ids."""

    @abc.abstractmethod
    async def _list_page(self, limit: int, after: UserId | None) -> StoredUserPage: ...

    @abc.abstractmethod
    async def _add(self, user: User) -> None: ...

    @abc.abstractmethod
    async def _update(self, user: User, previous_email: Email, *, visible: bool) -> None:
        """Stage the write; ``visible``: callers can see the change, so the version moves."""

    @abc.abstractmethod
    async def _delete(self, user: User, stored_email: Email) -> None: ...


class SessionRepository(abc.ABC):
    """A user's sessions, each stored on its own (not in the user's record), by user and by
    (epoch, session id): reading or rotating one costs the same however many the user holds.

    Reads are strongly consistent and see only the user's current session epoch (as read with
    the user): sessions of earlier epochs are over and are never returned. Writes are staged on
    the unit of work and land in the same atomic write as the users'. Every write that adds or
    drops a session goes with a write of its user (``users.update``), whose revision check
    serializes them; a rotation alone is one conditional write on the session, which fails with
    ConcurrentWrite unless the session still holds the token it rotates away.
    """

    @abc.abstractmethod
    async def current(self, user: User) -> list[Session]:
        """Every session of the user's current epoch, expired ones included."""

    @abc.abstractmethod
    async def get(self, user: User, session_id: str) -> Session | None:
        """The session of the user's current epoch with this id; None if there is none."""

    @abc.abstractmethod
    async def add(self, user: User, session: Session) -> None:
        """Stage a new session (of the user's epoch)."""

    @abc.abstractmethod
    async def remove(self, user: User, session: Session) -> None:
        """Stage dropping a session (as read)."""

    @abc.abstractmethod
    async def rotate(self, user: User, before: Session, after: Session) -> None:
        """Stage replacing ``before`` (as read) by ``after``, the same session with a new token;
        it lands only if the stored session still holds ``before``'s token."""

    @abc.abstractmethod
    async def move(self, user: User, before: Session, after: Session) -> None:
        """Stage moving a session to another epoch (``after.epoch``): the session kept when all
        the others end. It lands only if the stored session still holds ``before``'s token (a
        refresh in between fails it with ConcurrentWrite: read again)."""


class UnitOfWork(abc.ABC):
    """Atomic changes: ``async with uow: ...; await uow.commit()``; what is not committed is
    dropped when the block ends.

    The contract a use case relies on:
    - A unit of work may be entered several times, one block after another (never nested).
      Each block commits at most once; its staged writes land together or not at all.
    - What a block read stays remembered across blocks: the revision of every user read
      (``users.get_*``) is the one a later ``update`` or ``delete`` of that user is checked
      against, in whatever block it is staged. So a use case may read in one block, do slow
      work outside any block (hashing a password), and write in the next; the write fails
      with VersionConflict if anything changed the user in between.
    - After a VersionConflict, read the user again (in a new block) before writing it again:
      the revision remembered is the one the conflict proved stale (retry.retry_on_conflict
      runs such attempts).
    - ``commit`` raising leaves nothing landed, no version moved, and the users keep their
      pending events; leaving the block drops the staged writes.
    """

    users: UserRepository
    sessions: SessionRepository

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.rollback()

    @abc.abstractmethod
    async def commit(self) -> None:
        """Apply every staged write atomically, or none of them."""

    @abc.abstractmethod
    async def rollback(self) -> None:
        """Drop whatever is staged and not yet committed."""


UnitOfWorkFactory = Callable[[], UnitOfWork]


class EventLog(Protocol):
    """Reads the recorded domain events (the outbox); writing them is the unit of work's."""

    async def user_events(
        self, user_id: UserId, *, after_sequence: int, limit: int
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events of one user with a sequence above ``after_sequence``, in
        sequence order, read strongly consistent."""
        ...

    async def stream_events(
        self, day: date, *, shard: int, after: str | None, until: datetime, limit: int
    ) -> list[RecordedEvent]:
        """Up to ``limit`` events recorded on UTC ``day`` in ``shard`` of the stream (0 to
        STREAM_SHARDS - 1; see domain.event_cursors), in stream (cursor) order: those whose
        cursor follows ``after`` (None: from the day's start) and that were recorded at or
        before ``until``. May lag behind recent writes (an eventually consistent index)."""
        ...


class PasswordHasher(Protocol):
    """Hashes and verifies passwords, off the event loop.

    ``dummy_hash`` is a hash of no one's password made with today's parameters:
    verifying against it when an email is unknown takes as long as a real check.
    ``hash`` and ``verify`` may refuse at once when too many hashes wait already (the server
    answers RESOURCE_EXHAUSTED); a use case hashes before it writes, so nothing has changed then.
    """

    dummy_hash: str

    async def hash(self, password: Password) -> str: ...

    async def verify(self, password_hash: str, password: Password) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether the hash was made with weaker parameters than today's."""
        ...


@dataclass(frozen=True, repr=False)
class AccessToken:
    """A signed access token and its lifetime in seconds; the token never shows in repr."""

    value: str
    expires_in: int

    def __repr__(self) -> str:
        return f"AccessToken(***, expires_in={self.expires_in})"


class AccessTokenIssuer(Protocol):
    """Signs short-lived access tokens for a user's session."""

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
        """A token for the session, whose ``email_verified`` claim says whether the user's
        address was verified when it was issued, whose ``amr`` claim (RFC 8176) how the
        session's sign-in was proven, and whose ``auth_time`` claim (OpenID Connect) when that
        sign-in happened: ``now`` unless given (a sign-in just happened), the session's
        ``created_at`` on refresh, so a refreshed token never looks like a recent sign-in."""
        ...


@dataclass(frozen=True, repr=False)
class PasswordResetMail:
    """What a password-reset message says: to whom, and the single-use token (a secret).

    ``name`` (the user's first name) is the one text a registrant chose that mail may show, and
    only escaped, in the greeting: the address owner may be someone else, and longer chosen text
    could be made to read like a phishing lure.
    """

    to: str
    token: str
    expires_at: datetime
    name: str = ""

    def __repr__(self) -> str:
        return f"PasswordResetMail(to=..., expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True, repr=False)
class LockNoticeMail:
    """Tells an account's owner that failed sign-ins locked it, with a reset token (a secret)
    issued in the same write that recorded the lock-out."""

    to: str
    locked_at: datetime
    token: str
    expires_at: datetime
    name: str = ""

    def __repr__(self) -> str:
        return f"LockNoticeMail(to=..., locked_at={self.locked_at.isoformat()})"


@dataclass(frozen=True, repr=False)
class VerificationMail:
    """Asks the owner of ``to`` to confirm it: a link with the single-use ``token`` and, for
    mail read on another device, the 6-digit ``code`` (both secrets), valid until ``expires_at``."""

    to: str
    name: str
    token: str
    code: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"VerificationMail(to=..., expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True, repr=False)
class EmailChangeMail:
    """Sent to the address a user asked to move to: the link (single-use ``token``, a secret)
    that confirms the change, valid until ``expires_at``."""

    to: str
    name: str
    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"EmailChangeMail(to=..., expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True, repr=False)
class EmailChangeNoticeMail:
    """Sent to the address in use when a change away from it is asked: a link with the
    single-use ``cancel_token`` (a secret) that cancels the change, valid until ``expires_at``.
    It does not name the new address, not even masked: that is text the requester chose, and the
    mail goes to whoever owns the old one."""

    to: str
    name: str
    cancel_token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"EmailChangeNoticeMail(to=..., expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True)
class SecondFactorNoticeMail:
    """Tells an account's owner that a second factor of ``kind`` was added (``added``) or removed
    from the account; it carries no secret and no link: whoever did not do it resets their
    password and asks support."""

    to: str
    first_name: str
    kind: SecondFactorKind
    added: bool

    def __repr__(self) -> str:
        change = "added" if self.added else "removed"
        return f"SecondFactorNoticeMail(to=..., kind={self.kind.value}, {change})"


class TotpCodes(Protocol):
    """Makes TOTP secrets (RFC 6238: 30-second time steps, 6 digits) and checks codes against
    them. Secrets are sealed (encrypted) by the implementation's keys and unsealed only inside it:
    the domain holds a SealedSecret and sees a secret in clear only when it is made."""

    def new_secret(self) -> NewTotpSecret:
        """A fresh random secret, in clear and sealed with the current key."""
        ...

    def provisioning_uri(self, secret: NewTotpSecret, account_name: str) -> str:
        """The ``otpauth://totp/...`` URI an authenticator app reads (from a QR code)."""
        ...

    def matching_step(
        self, sealed: SealedSecret, code: str, now: datetime, *, after_step: int | None
    ) -> int | None:
        """The time step, within one step of ``now``'s either way (clock drift), at which
        ``code`` (6 digits) is the secret's code and that is later than ``after_step`` (None: any);
        the earliest such step, or None when there is none. Raises ValueError when the secret
        cannot be unsealed (a key that is gone, a damaged ciphertext)."""
        ...


class TaskRunner(Protocol):
    """Runs work after the reply has gone, so that the reply's timing does not depend on it.

    The work is awaited to its end (retries included) unless the process stops first; its
    failures are logged by the runner, never shown to the caller. The runner may drop work
    (closing the coroutine unstarted): work given a ``key`` while earlier work with the same key
    is still under way is merged into that work, and work beyond the runner's bound is dropped.
    So only give work that a caller may lose without harm (mail the caller will ask for again).
    """

    def spawn(
        self, work: Coroutine[Any, Any, None], *, name: str, key: str | None = None
    ) -> None: ...


class Notifier(Protocol):
    """Delivers messages to users; raises on failure (the caller decides whether that matters)."""

    async def send_password_reset(self, mail: PasswordResetMail) -> None: ...

    async def send_lock_notice(self, mail: LockNoticeMail) -> None: ...

    async def send_verification(self, mail: VerificationMail) -> None: ...

    async def send_email_change(self, mail: EmailChangeMail) -> None: ...

    async def send_email_change_notice(self, mail: EmailChangeNoticeMail) -> None: ...

    async def send_second_factor_notice(self, mail: SecondFactorNoticeMail) -> None: ...


@dataclass(frozen=True)
class LockNotices:
    """How a lock-out reaches its owner: mailed by ``notifier``, in work ``later`` runs after the
    reply (so that neither the reply nor its timing waits for, or depends on, the mail)."""

    notifier: Notifier
    later: TaskRunner


@dataclass(frozen=True)
class SecondFactorNotices:
    """How a second factor's owner learns it was added or removed: mailed by ``notifier``, in
    work ``later`` runs after the reply."""

    notifier: Notifier
    later: TaskRunner


@dataclass(frozen=True)
class VerificationMailing:
    """How verification mail reaches an address: sent by ``notifier``, in work ``later`` runs
    after the reply (so that neither the reply nor its timing waits for, or depends on, it)."""

    notifier: Notifier
    later: TaskRunner


@dataclass(frozen=True)
class LegacyUser:
    """What the old system says of a user whose password it has just accepted: its id (kept
    when it is a UUID), address, names, and whether it had confirmed the address."""

    id: str
    email: str
    first_name: str
    last_name: str
    email_confirmed: bool


class LegacyAuthenticator(Protocol):
    """The old system's password check, asked at sign-in for an email this service does not
    know yet (lazy migration). ``check`` answers the user when the old system accepts the
    password; None for a refusal and for every failure (timeout, garbage, the old system down
    or skipped while its circuit breaker is open): it never raises for those."""

    async def check(self, email: str, password: Password) -> LegacyUser | None: ...

    async def lookup(self, email: str) -> LegacyUser | None:
        """The user of ``email`` when the old system knows it (asked at password reset, with
        no password); None for a refusal and for every failure, as ``check``."""
        ...
