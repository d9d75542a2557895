"""Work after the reply: it runs to its end, failures are logged, and shutdown drains it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from domain.errors import DeadlineExceeded
from persistence.deadline import deadline_in, refuse_after_deadline
from server.background import BackgroundTasks


async def test_spawning_returns_at_once_and_the_work_runs_to_its_end() -> None:
    release, done = asyncio.Event(), asyncio.Event()
    tasks = BackgroundTasks()

    async def work() -> None:
        await release.wait()
        done.set()

    tasks.spawn(work(), name="slow work")
    assert not done.is_set()

    release.set()
    await tasks.drain(grace_seconds=1)
    assert done.is_set()


async def test_a_failure_is_logged_with_its_name_and_type_but_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tasks = BackgroundTasks()

    async def work() -> None:
        raise ConnectionRefusedError("connection refused by smtp.example.com:587")

    tasks.spawn(work(), name="issue a password reset")
    await tasks.drain(grace_seconds=1)

    (failure,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = failure.getMessage()
    assert message.startswith("issue a password reset failed: ConnectionRefusedError")


async def test_shutdown_waits_then_cancels_work_that_is_stuck(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = asyncio.Event()
    tasks = BackgroundTasks()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks.spawn(stuck(), name="count a failed sign-in")
    await asyncio.wait_for(tasks.drain(grace_seconds=0.05), timeout=1)

    assert cancelled.is_set()
    assert any("unfinished: count a failed sign-in" in r.getMessage() for r in caplog.records)


async def test_work_spawned_by_a_request_is_not_bound_by_the_requests_deadline() -> None:
    outcomes: list[str] = []
    tasks = BackgroundTasks()

    async def work() -> None:
        await asyncio.sleep(0.1)  # the request's deadline has passed by now
        try:
            refuse_after_deadline(event_name="before-send.dynamodb.TransactWriteItems")
            outcomes.append("sent")
        except DeadlineExceeded:
            outcomes.append("refused")

    with deadline_in(0.05):
        tasks.spawn(work(), name="after the reply")
    await tasks.drain(grace_seconds=1)

    assert outcomes == ["sent"]
