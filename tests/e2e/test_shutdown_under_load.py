"""SIGTERM with 200 RPCs in flight: each finishes or is refused UNAVAILABLE; none is cut in half."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tests.conftest import free_port
from tests.e2e.test_cli import cli_environment, health_status, start_cli

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OK, UNAVAILABLE = grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE

# Large enough for every RPC in flight to finish on a loaded CI machine (here they take a few
# seconds): a call still running when the grace is over is cancelled (the tiny-grace test).
GRACE_SECONDS = 60.0
# Time to exit on top of the grace: closing the DynamoDB client, the interpreter's own exit.
EXIT_MARGIN_SECONDS = 15.0
STARTUP_SECONDS = 30.0
RPC_TIMEOUT_SECONDS = GRACE_SECONDS + 30  # never the reason an RPC ends in these tests
IN_FLIGHT = 200
UPDATES = 40  # of users registered beforehand; the rest of the 200 are registrations
SIGTERM_AFTER = 10  # replies, so that the rest are in flight when the signal arrives
LATE_CALLS = 5
PASSWORD = "correct horse battery"


@dataclass
class Outcome:
    """How one RPC ended: its status code and when, and what it was about."""

    kind: str  # "register", "update" or "late"
    key: str  # the email registered, or the id of the user updated
    code: grpc.StatusCode
    details: str
    ended: float


@dataclass
class Running:
    """A ``user-service serve`` process, its port and tables, and its output once it exits."""

    process: asyncio.subprocess.Process
    port: int
    users_table: str
    emails_table: str
    output: asyncio.Task[tuple[bytes, bytes]]
    outcomes: list[Outcome] = field(default_factory=list)

    async def exit_code_within(self, seconds: float) -> tuple[int, str]:
        """Waits (at most ``seconds``) for the process to end: its exit code and its output
        (the log is on stdout; stderr follows it, for anything else the process wrote)."""
        stdout, stderr = await asyncio.wait_for(asyncio.shield(self.output), timeout=seconds)
        assert self.process.returncode is not None
        return self.process.returncode, (stdout + stderr).decode(errors="replace")


@contextlib.asynccontextmanager
async def serving(moto_endpoint: str, grace_seconds: float) -> AsyncIterator[Running]:
    """The real command, over moto with fresh tables, once its health check says SERVING."""
    port, suffix = free_port(), uuid4().hex[:8]
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_DYNAMODB_ENDPOINT=moto_endpoint,
        USER_SERVICE_EMBEDDED_DYNAMODB="false",
        USER_SERVICE_TABLE_NAME=f"Users-{suffix}",
        USER_SERVICE_EMAIL_TABLE_NAME=f"UserEmails-{suffix}",
        USER_SERVICE_SHUTDOWN_GRACE_SECONDS=str(grace_seconds),
        USER_SERVICE_PASSWORD_HASH_WORKERS="4",
        # Every one of the 200 calls in flight is let in, so that each meets the shutdown; the
        # refusals of overload have tests of their own (test_overload.py).
        USER_SERVICE_PASSWORD_HASH_MAX_WAITING="1000",
        # moto serves one request at a time: 200 writes queue there for seconds on a busy
        # machine, and a read timeout would make botocore resend a write that did land (real
        # DynamoDB would drop the resend by its ClientRequestToken; moto applies it again).
        USER_SERVICE_DYNAMODB_READ_TIMEOUT="30",
        USER_SERVICE_LOG_LEVEL="info",
    )
    process = await start_cli("serve", environment=environment)
    # Read the output from the start: a full pipe would stall the server.
    output = asyncio.create_task(process.communicate())
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while await health_status(port) != SERVING:
            assert process.returncode is None, "the server exited early"
            assert time.monotonic() < deadline, f"not SERVING within {STARTUP_SECONDS} s"
            await asyncio.sleep(0.1)
        yield Running(process, port, f"Users-{suffix}", f"UserEmails-{suffix}", output)
    finally:
        if process.returncode is None:
            process.kill()
        await output


async def outcome_of(running: Running, kind: str, key: str, call: Awaitable[object]) -> Outcome:
    """Awaits ``call`` and records how it ended."""
    try:
        await call
        code, details = OK, ""
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    outcome = Outcome(kind, key, code, details, time.monotonic())
    running.outcomes.append(outcome)
    return outcome


def registration(email: str) -> pb.RegisterUserRequest:
    return pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="L")


async def register_beforehand(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, count: int
) -> list[str]:
    suffix = uuid4().hex[:8]
    users = await asyncio.gather(
        *(
            stub.RegisterUser(registration(f"before-{i}-{suffix}@example.com"), timeout=30)
            for i in range(count)
        )
    )
    return [user.id for user in users]


def start_burst(
    running: Running, stub: user_service_pb2_grpc.UserServiceAsyncStub, user_ids: list[str]
) -> list[asyncio.Task[Outcome]]:
    """IN_FLIGHT RPCs at once: an update of each of ``user_ids``, registrations for the rest.

    The updates are spread among the registrations, so that some are in flight at SIGTERM.
    """
    suffix = uuid4().hex[:8]
    step = IN_FLIGHT // len(user_ids) if user_ids else IN_FLIGHT + 1
    to_update = iter(user_ids)
    tasks: list[asyncio.Task[Outcome]] = []
    for i in range(IN_FLIGHT):
        user_id = next(to_update, None) if i % step == 0 else None
        if user_id is None:
            email = f"burst-{i}-{suffix}@example.com"
            call: Awaitable[pb.User] = stub.RegisterUser(
                registration(email), timeout=RPC_TIMEOUT_SECONDS
            )
            tasks.append(asyncio.create_task(outcome_of(running, "register", email, call)))
        else:
            update = pb.UpdateProfileRequest(
                id=user_id, first_name=renamed(user_id), expected_version=1
            )
            call = stub.UpdateProfile(update, timeout=RPC_TIMEOUT_SECONDS)
            tasks.append(asyncio.create_task(outcome_of(running, "update", user_id, call)))
    return tasks


def renamed(user_id: str) -> str:
    return f"Renamed{user_id[:8]}"


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        await asyncio.sleep(0.01)


async def stored(moto_endpoint: str, running: Running) -> tuple[dict[str, Any], dict[str, str]]:
    """The tables read raw: users by id, and the email guards (normalized email -> user id)."""
    async with open_dynamodb_client(
        DynamoDbOptions(region="us-east-1", endpoint_url=moto_endpoint)
    ) as client:
        users = {item["Id"]["S"]: item for item in await scan(client, running.users_table)}
        guards = {
            item["Email"]["S"]: item["UserId"]["S"]
            for item in await scan(client, running.emails_table)
        }
    return users, guards


async def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = await client.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def assert_every_user_has_its_guard_and_every_guard_its_user(
    users: dict[str, Any], guards: dict[str, str]
) -> None:
    for user_id, item in users.items():
        email = item["EmailIndex"]["S"]
        assert guards.get(email) == user_id, f"user {email} without its email guard"
    for email, user_id in guards.items():
        assert user_id in users, f"guard {email} without its user"
        assert users[user_id]["EmailIndex"]["S"] == email, f"guard {email} names another user"


async def health_check(health: health_pb2_grpc.HealthStub) -> str:
    """The overall health status's name, or the status code's name if the check fails."""
    try:
        reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
    except grpc.aio.AioRpcError as error:
        return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def unexpected(outcomes: list[Outcome], allowed: set[grpc.StatusCode]) -> list[str]:
    return [
        f"{o.kind} {o.key}: {o.code.name} {o.details}" for o in outcomes if o.code not in allowed
    ]


@pytest.mark.slow
async def test_sigterm_under_load_lets_every_call_finish_or_refuses_it_unavailable(
    moto_endpoint: str,
) -> None:
    async with serving(moto_endpoint, GRACE_SECONDS) as running:
        target = f"127.0.0.1:{running.port}"
        async with grpc.aio.insecure_channel(target) as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            updated_ids = await register_beforehand(stub, UPDATES)
            burst = start_burst(running, stub, updated_ids)
            await until(lambda: len(running.outcomes) >= SIGTERM_AFTER, 60, "the first replies")

            running.process.send_signal(signal.SIGTERM)
            sent_sigterm = time.monotonic()
            in_flight_at_sigterm = IN_FLIGHT - len(running.outcomes)

            # The health check says NOT_SERVING while the calls under way finish.
            seen: list[str] = []
            while not seen or seen[-1] == "SERVING":
                assert time.monotonic() < sent_sigterm + 10, f"{len(seen)} checks: {seen[-3:]}"
                seen.append(await health_check(health))
                await asyncio.sleep(0.02)
            drain_began = time.monotonic()
            in_flight_when_not_serving = IN_FLIGHT - len(running.outcomes)

            # New calls during the drain are refused (sent at once: the server stops only once
            # nothing is under way and nothing has arrived for a moment).
            suffix = uuid4().hex[:8]
            late_emails = [f"late-{i}-{suffix}@example.com" for i in range(LATE_CALLS)]
            late = await asyncio.gather(
                *(
                    outcome_of(
                        running,
                        "late",
                        email,
                        stub.RegisterUser(registration(email), timeout=RPC_TIMEOUT_SECONDS),
                    )
                    for email in late_emails
                )
            )

            await asyncio.gather(*burst)
            code, log = await running.exit_code_within(GRACE_SECONDS + EXIT_MARGIN_SECONDS)
            exited_after = time.monotonic() - sent_sigterm
            email = f"after-exit-{suffix}@example.com"
            after_exit = await outcome_of(
                running, "late", email, stub.RegisterUser(registration(email), timeout=10)
            )

    assert code == 0, log
    assert exited_after <= GRACE_SECONDS + EXIT_MARGIN_SECONDS
    assert seen[-1] == "NOT_SERVING", seen
    assert in_flight_when_not_serving > 0, "NOT_SERVING must show while calls are under way"
    assert unexpected(running.outcomes, {OK, UNAVAILABLE}) == []
    assert [o.code for o in late] == [UNAVAILABLE] * len(late)
    assert after_exit.code is UNAVAILABLE
    # The test did what it says: many calls were in flight, and some finished during the drain.
    assert in_flight_at_sigterm >= 50, in_flight_at_sigterm
    assert any(o.code is OK and o.ended > drain_began for o in running.outcomes)

    users, guards = await stored(moto_endpoint, running)
    assert_every_user_has_its_guard_and_every_guard_its_user(users, guards)
    by_kind: dict[tuple[str, grpc.StatusCode], set[str]] = {}
    for o in running.outcomes:
        by_kind.setdefault((o.kind, o.code), set()).add(o.key)
    registered = by_kind.get(("register", OK), set())
    refused = by_kind.get(("register", UNAVAILABLE), set()) | by_kind.get(
        ("late", UNAVAILABLE), set()
    )
    assert registered <= set(guards), "a registration answered OK is not stored"
    assert refused.isdisjoint(guards), "a registration answered UNAVAILABLE was stored"
    assert len(users) == UPDATES + len(registered)
    for user_id in by_kind.get(("update", OK), set()):
        assert users[user_id]["FirstName"]["S"] == renamed(user_id)
        assert users[user_id]["Version"]["N"] == "2"
    for user_id in by_kind.get(("update", UNAVAILABLE), set()):
        assert users[user_id]["FirstName"]["S"] == "Ada"
        assert users[user_id]["Version"]["N"] == "1"


@pytest.mark.slow
async def test_calls_still_running_when_a_tiny_grace_ends_are_cancelled_yet_nothing_is_half_written(
    moto_endpoint: str,
) -> None:
    grace = 0.2
    async with serving(moto_endpoint, grace) as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            burst = start_burst(running, stub, [])
            await until(lambda: len(running.outcomes) >= SIGTERM_AFTER, 60, "the first replies")
            running.process.send_signal(signal.SIGTERM)
            sent_sigterm = time.monotonic()
            await asyncio.gather(*burst)
            code, log = await running.exit_code_within(grace + EXIT_MARGIN_SECONDS)
            exited_after = time.monotonic() - sent_sigterm

    assert code == 0, log
    assert exited_after <= grace + EXIT_MARGIN_SECONDS
    assert "The shutdown grace is over: cancelling" in log, "no call was still running"
    # A call cut off when the grace ends gets UNAVAILABLE (or CANCELLED if it had not reached a
    # handler yet): then its write may or may not have landed; it is never half made.
    assert unexpected(running.outcomes, {OK, UNAVAILABLE, grpc.StatusCode.CANCELLED}) == []
    users, guards = await stored(moto_endpoint, running)
    assert_every_user_has_its_guard_and_every_guard_its_user(users, guards)
    registered = {o.key for o in running.outcomes if o.code is OK}
    assert registered <= set(guards), "a registration answered OK is not stored"


async def test_an_open_health_watch_sees_not_serving_and_does_not_hold_the_shutdown(
    moto_endpoint: str,
) -> None:
    grace = 20.0
    async with serving(moto_endpoint, grace) as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
            statuses = [(await watch.read()).status]
            running.process.send_signal(signal.SIGTERM)
            sent_sigterm = time.monotonic()
            statuses.append((await asyncio.wait_for(watch.read(), timeout=10)).status)
            code, log = await running.exit_code_within(grace + EXIT_MARGIN_SECONDS)
            exited_after = time.monotonic() - sent_sigterm

    assert statuses == [SERVING, NOT_SERVING]
    assert code == 0, log
    # Nothing else was under way: waiting out the grace for the watch would be for nothing.
    assert exited_after < grace / 2, f"took {exited_after:.1f} s to stop"
