"""The CPU rows' processes: the keep-alive stand-in, and the floor, the service and the limit on it.

The stand-in's items are written here with the service's own mappers (``persistence.user_mapper``
through ``tools.bench.seed``, and ``persistence.session_mapper``), in the layout the service reads:
per seeded user a user item, an email guard and one session item of the user's current epoch (a
signed-in user, as sign-in's Query of the user's sessions finds one), all sharing the seeded
password hash so the reserved users can sign in. A sign-in's new session item lands in a
partition that holds a seeded one, so the stand-in keeps it, and the refresh chain that starts
with it works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from domain.secret_tokens import issue_token
from domain.values import Session, UserId
from persistence.session_mapper import session_to_item
from persistence.user_mapper import user_to_item
from tools.bench.environment import Tables, default_environment, on_moto
from tools.bench.processes import (
    HOST,
    START_TIMEOUT_SECONDS,
    Child,
    free_port,
    start_child,
    stop_child,
    wait_until_serving,
)
from tools.bench.seed import Seeded, seeded_user

SESSION_LIFETIME = timedelta(days=7)
STANDIN_USERS = 200  # the reserved users (sign-ins, refresh chains) and 150 or so to read


@dataclass(frozen=True)
class StandInStack:
    """The stand-in and the three servers measured against it."""

    standin: Child
    service: Child
    service_target: str
    floor: Child
    floor_target: str
    limit: Child
    limit_target: str
    seeded: Seeded


def write_seed_file(path: Path, tables: Tables, password_hash: str, count: int) -> Seeded:
    """The stand-in's tables (their key attributes) and items; the users, as ``Seeded``."""
    seeded = Seeded()
    users, guards, sessions = [], [], []
    now = datetime.now(UTC)
    for number in range(count):
        user = seeded_user(number, password_hash, now)
        seeded.ids.append(user.id.value)
        seeded.emails.append(user.email.value)
        users.append(user_to_item(user, version=1, revision=1, event_seq=0))
        guards.append({"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}})
        sessions.append(seeded_session_item(user.id.value, user.session_epoch, now))
    seed = {
        "keys": {
            tables.users: ["Id"],
            tables.emails: ["Email"],
            tables.events: ["UserId", "Seq"],
            tables.sessions: ["UserId", "SessionKey"],
        },
        "items": {tables.users: users, tables.emails: guards, tables.sessions: sessions},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seed))
    return seeded


def seeded_session_item(user_id: str, epoch: int, now: datetime) -> dict[str, Any]:
    """A session of ``user_id`` opened at ``now`` in ``epoch``, as the sessions table holds it
    (its token is not kept: the bench's refresh chains start with sign-ins of their own)."""
    session_id = str(uuid4())
    token = issue_token(UserId(user_id), session_id)
    session = Session(
        session_id=session_id,
        token_hash=token.token_hash,
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
        last_used_at=now,
        epoch=epoch,
    )
    return session_to_item(user_id, session, idle_lifetime=SESSION_LIFETIME)


@dataclass(frozen=True)
class RunningStandIn:
    """The stand-in, where it listens, its tables and the users seeded into it."""

    child: Child
    endpoint: str
    tables: Tables
    seeded: Seeded


@contextlib.asynccontextmanager
async def running_standin(logs: Path, password_hash: str) -> AsyncIterator[RunningStandIn]:
    """Seeds and starts the stand-in (tables of a name of their own); stops it on exit."""
    suffix = uuid4().hex[:8]
    tables = Tables(
        f"Users-{suffix}",
        f"UserEmails-{suffix}",
        f"UserEvents-{suffix}",
        f"UserSessions-{suffix}",
    )
    seed_file = logs / "standin-seed.json"
    seeded = write_seed_file(seed_file, tables, password_hash, STANDIN_USERS)
    port = free_port()
    args = ["-m", "tools.bench.standin", "--port", str(port), "--seed-file", str(seed_file)]
    standin = await start_child("standin", args, default_environment(port), logs)
    try:
        await _wait_until_listening(port, standin)
        yield RunningStandIn(standin, f"http://{HOST}:{port}", tables, seeded)
    finally:
        await stop_child(standin)


async def start_on_standin(
    name: str,
    args: list[str],
    port: int,
    standin: RunningStandIn,
    logs: Path,
    settings: Sequence[tuple[str, str]] = (),
) -> Child:
    """Starts ``python <args>`` (a server) on ``port`` against the stand-in; returns once it is
    SERVING. The caller stops it."""
    environment = on_moto(port, standin.endpoint, standin.tables, settings)
    environment["USER_SERVICE_ENSURE_TABLES_CREATED"] = "false"  # nothing to create
    child = await start_child(name, args, environment, logs)
    try:
        await wait_until_serving(f"{HOST}:{port}", child, START_TIMEOUT_SECONDS)
    except BaseException:
        await stop_child(child)
        raise
    return child


@contextlib.asynccontextmanager
async def running_standin_stack(
    logs: Path, password_hash: str, settings: Sequence[tuple[str, str]] = ()
) -> AsyncIterator[StandInStack]:
    """Starts the stand-in, then the service, the floor and the limit on it; stops them all."""
    async with contextlib.AsyncExitStack() as stack:
        standin = await stack.enter_async_context(running_standin(logs, password_hash))

        async def start(name: str, args: list[str], port: int) -> Child:
            child = await start_on_standin(name, args, port, standin, logs, settings)
            stack.push_async_callback(stop_child, child)
            return child

        ports = {name: free_port() for name in ("service", "floor", "limit")}
        service = await start("service-standin", ["-m", "server", "serve"], ports["service"])
        floor = await start("floor-standin", ["-m", "tools.bench.floor"], ports["floor"])
        limit = await start("limit-standin", ["-m", "tools.bench.limit"], ports["limit"])
        yield StandInStack(
            standin.child,
            service,
            f"{HOST}:{ports['service']}",
            floor,
            f"{HOST}:{ports['floor']}",
            limit,
            f"{HOST}:{ports['limit']}",
            standin.seeded,
        )


async def _wait_until_listening(port: int, child: Child) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        child.check_alive()
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the stand-in did not listen on port {port}")
