"""The workload's bookkeeping: what it believes each of its users looks like on the server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

# Sessions the tool keeps using per user; older ones are forgotten (the server's own cap, 10 by
# default, ends the oldest first, so the ones tracked here are never ended behind its back).
TRACKED_SESSIONS = 3
_PICK_TRIES = 12


@dataclass
class Session:
    """A signed-in session: its id and the refresh token that is current for it."""

    session_id: str
    refresh_token: str

    def __repr__(self) -> str:
        return f"Session({self.session_id}, ***)"


@dataclass
class Account:
    """A user this run registered, as the server should now hold it.

    Every RPC about an account runs under its ``lock`` (a deliberate race sends its
    contenders together while holding it), so this record always knows the current password,
    version, names and refresh tokens. ``uncertain`` marks an account whose last change
    ended without a clear answer (an unexpected status): it is no longer driven or compared,
    only checked to exist.
    """

    user_id: str
    email: str
    password: str
    first_name: str
    last_name: str
    version: int
    sessions: list[Session] = field(default_factory=list)
    uncertain: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def add_session(self, session: Session) -> None:
        self.sessions.append(session)
        del self.sessions[:-TRACKED_SESSIONS]


class Accounts:
    """Every account registered so far, with a random pick that prefers idle ones."""

    def __init__(self) -> None:
        self.all: list[Account] = []

    def add(self, account: Account) -> None:
        self.all.append(account)

    def pick(
        self, rng: random.Random, wanted: Callable[[Account], bool] = lambda _: True
    ) -> Account | None:
        """A random usable account for which ``wanted`` holds, preferring one not in use."""
        if not self.all:
            return None
        busy: Account | None = None
        for _ in range(_PICK_TRIES):
            account = rng.choice(self.all)
            if account.uncertain or not wanted(account):
                continue
            if not account.lock.locked():
                return account
            busy = busy or account
        return busy
