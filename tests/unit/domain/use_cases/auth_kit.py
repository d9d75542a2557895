"""One in-memory world for the authentication use cases: store, clock, fakes and default policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from domain.events import DomainEvent
from domain.policies import AuthPolicy
from domain.ports import LockNotices
from domain.use_cases.sessions import SessionTokens, authenticate, refresh_session
from domain.user import User
from domain.values import Session
from tests.builders import T0, new_user, session_tokens
from tests.fakes import (
    DeferredTasks,
    FakeAccessTokenIssuer,
    FakeLegacyAuthenticator,
    FakePasswordHasher,
    FakeUnitOfWork,
    FixedClock,
    InMemoryStore,
    RecordingNotifier,
)

EMAIL = "ada.lovelace@example.com"
PASSWORD = "Zebra-Quill-42"
WRONG_PASSWORD = "Zebra-Quill-43"


def fake_hash(password: str, scheme: str = "fake") -> str:
    """What FakePasswordHasher stores for ``password`` ("old" hashes need re-hashing)."""
    return f"{scheme}${password[::-1]}"


@dataclass
class AuthKit:
    """Shared store and fakes; every call gets a fresh unit of work, as a request would."""

    store: InMemoryStore = field(default_factory=InMemoryStore)
    clock: FixedClock = field(default_factory=lambda: FixedClock(T0))
    hasher: FakePasswordHasher = field(default_factory=FakePasswordHasher)
    issuer: FakeAccessTokenIssuer = field(default_factory=FakeAccessTokenIssuer)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    policy: AuthPolicy = field(default_factory=AuthPolicy)
    after_reply: DeferredTasks = field(default_factory=DeferredTasks)
    # The lazy-migration hook sign_in passes on (None: off).
    legacy: FakeLegacyAuthenticator | None = None
    _seen: dict[str, int] = field(default_factory=dict)

    @property
    def notices(self) -> LockNotices:
        return LockNotices(self.notifier, self.after_reply)

    def close(self) -> None:
        """At a test's end: the work after the reply that the test never ran is dropped."""
        self.after_reply.close()

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store, clock=self.clock)

    async def add_user(
        self, email: str = EMAIL, password: str = PASSWORD, *, scheme: str = "fake"
    ) -> User:
        user = new_user(email)
        user.password_hash = fake_hash(password, scheme)
        async with self.uow() as uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    def stored(self, user: User) -> User:
        """The user as committed now."""
        return self.store.users[user.id.value]

    def sessions(self, user: User) -> tuple[Session, ...]:
        """The user's stored sessions of its current epoch (expired ones included), oldest
        first."""
        return tuple(self.store.live_sessions(user.id))

    def events(self, user: User) -> list[DomainEvent]:
        """The events stored for the user so far, in sequence order (registration first)."""
        return self.store.events_of(user.id)

    def new_events(self, user: User) -> list[DomainEvent]:
        """The events stored for the user since the last call (the first: since it was added)."""
        seen = self._seen.get(user.id.value, 1)  # UserRegistered is taken as seen
        stored = self.events(user)
        self._seen[user.id.value] = len(stored)
        return stored[seen:]

    def later(self, **delta: float) -> None:
        self.clock.now += timedelta(**delta)

    async def sign_in(
        self, email: str = EMAIL, password: str = PASSWORD, **client: str
    ) -> SessionTokens:
        """Authenticate; ``client``: user_agent, ip_address, device_label, as given."""
        return session_tokens(
            await authenticate(
                self.uow(),
                self.hasher,
                self.issuer,
                self.clock,
                self.policy,
                self.notices,
                email=email,
                password=password,
                legacy=self.legacy,
                **client,
            )
        )

    async def refresh(self, refresh_token: str) -> SessionTokens:
        return await refresh_session(
            self.uow(), self.issuer, self.clock, self.policy, refresh_token=refresh_token
        )
