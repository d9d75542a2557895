"""A user and its sessions as the store would hold them, for tests of the User aggregate's session
rules without a unit of work: each change is decided by the aggregate and applied here as the
use cases apply it through the SessionRepository port."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.events import SessionEndReason
from domain.policies import SessionPolicy
from domain.secret_tokens import IssuedToken, parse_token
from domain.user import RefreshOutcome, RefreshResult, User
from domain.values import Session


@dataclass
class SessionBook:
    """``user`` and every session item stored for it, of any epoch."""

    user: User
    policy: SessionPolicy = field(default_factory=SessionPolicy)
    stored: list[Session] = field(default_factory=list)

    def sessions(self) -> tuple[Session, ...]:
        """The sessions of the user's current epoch, in the order they were opened."""
        return tuple(s for s in self.stored if s.epoch == self.user.session_epoch)

    def start(
        self, at: datetime, policy: SessionPolicy | None = None
    ) -> tuple[Session, IssuedToken]:
        start = self.user.start_session(at, policy or self.policy, self.sessions())
        self._drop(*start.ended)
        self.stored.append(start.session)
        return start.session, start.token

    def refresh(
        self, token: IssuedToken | str, at: datetime, policy: SessionPolicy | None = None
    ) -> RefreshOutcome:
        lookup = parse_token(token if isinstance(token, str) else token.value)
        session = next((s for s in self.sessions() if s.session_id == lookup.session_id), None)
        outcome = self.user.refresh_session(session, lookup, at, policy or self.policy)
        if outcome.result is RefreshResult.ROTATED:
            assert outcome.session is not None
            self.stored = [outcome.session if s == session else s for s in self.stored]
        elif outcome.previous is not None:
            self._drop(outcome.previous)
        return outcome

    def logout(self, token: IssuedToken, at: datetime) -> bool:
        found = self.user.session_holding(self.sessions(), parse_token(token.value).token_hash)
        if found is None:
            return False
        self.user.end_session(found, SessionEndReason.LOGOUT, at)
        self._drop(found)
        return True

    def end_all(
        self,
        at: datetime,
        reason: SessionEndReason = SessionEndReason.LOGOUT_ALL,
        *,
        keep_session_id: str | None = None,
    ) -> int:
        ended = self.user.end_sessions(
            at, self.policy, self.sessions(), reason, keep_session_id=keep_session_id
        )
        if ended.kept is not None and ended.moved is not None:
            self.stored = [ended.moved if s == ended.kept else s for s in self.stored]
        return ended.count

    def holds(self, token_hash: str) -> bool:
        return self.user.session_holding(self.sessions(), token_hash) is not None

    def _drop(self, *ended: Session) -> None:
        self.stored = [s for s in self.stored if s not in ended]
