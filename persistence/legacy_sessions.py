"""Sessions that user items of schema version 2 still hold in their ``Sessions`` attribute,
and their move to the sessions table on the user's next write (persistence.item_upgrades, 3)."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.user import User
from domain.values import Session


@dataclass
class _Held:
    """What one user item read holds: the sessions not yet moved nor taken by a session write."""

    sessions: dict[str, Session]
    user: User | None = None
    written: bool = False  # a write of the user is staged
    taken: bool = False  # a session write dealt with one of them: the user item must be rewritten


@dataclass
class LegacySessions:
    """Per unit of work: the sessions held in the items of version 2 users it read.

    They read as sessions of the item's epoch (0 for a version 2 item). A session write that
    meets one of them (a rotation, a logout, the move of a kept session) writes the session's
    item without condition, as nothing is stored there yet, and makes the user item be written in
    the same transaction: its revision check, not the session item's condition, decides between
    concurrent writers then. When the user is written, the sessions no write took are put as
    items of their own in that transaction (unless the write ended them all), and the user item,
    of version 3, holds them no more.
    """

    _held: dict[str, _Held] = field(default_factory=dict)

    def read(self, user_id: str, sessions: list[Session]) -> None:
        """A user item was read; ``sessions``: those it holds ([] for a version 3 item)."""
        if sessions:
            self._held[user_id] = _Held({s.session_id: s for s in sessions})
        else:
            self._held.pop(user_id, None)

    def of(self, user: User) -> list[Session]:
        """The sessions the user's item holds and no staged write took, of its current epoch."""
        held = self._held.get(user.id.value)
        if held is None:
            return []
        return [s for s in held.sessions.values() if s.epoch == user.session_epoch]

    def find(self, user: User, session_id: str) -> Session | None:
        return next((s for s in self.of(user) if s.session_id == session_id), None)

    def take(self, user: User, session_id: str) -> bool:
        """Whether the session is held in the user item (then a write now deals with it)."""
        held = self._held.get(user.id.value)
        if held is None or session_id not in held.sessions:
            return False
        del held.sessions[session_id]
        held.user, held.taken = user, True
        return True

    def written(self, user: User) -> None:
        """A write of the user is staged."""
        held = self._held.get(user.id.value)
        if held is not None:
            held.user, held.written = user, True

    def to_move(self) -> list[tuple[User, bool, list[Session]]]:
        """Each user whose item must now be rewritten: the user, whether its write is staged
        already, and the sessions to put as items (none when the write ends them all)."""
        moves = []
        for held in self._held.values():
            if held.user is None or not (held.written or held.taken):
                continue
            moves.append((held.user, held.written, self.of(held.user)))
        return moves

    def moved(self, user_id: str) -> None:
        """The user's item holds its sessions no more (the write landed)."""
        self._held.pop(user_id, None)
