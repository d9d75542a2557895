"""Work after the reply: it runs to its end, failures are logged, and shutdown drains it."""

from __future__ import annotations

import asyncio
import inspect
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


async def test_work_with_a_key_already_under_way_waits_behind_it_and_the_rest_is_merged() -> None:
    release = asyncio.Event()
    runs: list[str] = []
    tasks = BackgroundTasks(max_jobs=10)

    async def work(label: str) -> None:
        runs.append(label)
        await release.wait()

    tasks.spawn(work("first"), name="issue a password reset", key="reset:ada@example.com")
    waiting, *merged = [work(f"again {n}") for n in range(50)]
    for coroutine in [waiting, *merged]:
        tasks.spawn(coroutine, name="issue a password reset", key="reset:ada@example.com")
    tasks.spawn(work("other"), name="issue a password reset", key="reset:bob@example.com")

    assert tasks.under_way == 2
    release.set()
    await tasks.drain(grace_seconds=1)
    # The first job may have read the account before the others arrived: one more job runs
    # after it, for all of them.
    assert runs == ["first", "other", "again 0"]
    assert tasks.merged == 49
    # Closed, never started (so no "coroutine was never awaited" warning either).
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in merged)


async def test_work_arriving_as_a_job_for_its_key_ends_still_gets_a_job_of_its_own() -> None:
    # The flaky case seen end to end: a reset mail already sent (its job not yet ended) and a
    # new request past the cool-down; merged into the ending job, it would have mailed nothing.
    checked: list[int] = []
    sent = asyncio.Event()
    tasks = BackgroundTasks(max_jobs=10)

    async def job(n: int) -> None:
        checked.append(n)
        sent.set()
        await asyncio.sleep(0.01)  # the mail is out; the job is closing its SMTP session

    tasks.spawn(job(1), name="mail", key="k")
    await sent.wait()
    tasks.spawn(job(2), name="mail", key="k")
    await tasks.drain(grace_seconds=1)

    assert checked == [1, 2]


async def test_work_waiting_behind_a_job_cut_off_at_shutdown_is_closed_unstarted() -> None:
    tasks = BackgroundTasks(max_jobs=10)

    async def stuck() -> None:
        await asyncio.Event().wait()

    async def later() -> None:
        raise AssertionError("must not start")

    waiting = later()
    tasks.spawn(stuck(), name="mail", key="k")
    tasks.spawn(waiting, name="mail", key="k")
    await tasks.drain(grace_seconds=0.05)

    assert inspect.getcoroutinestate(waiting) == inspect.CORO_CLOSED
    assert tasks.under_way == 0


async def test_a_key_takes_new_work_again_once_its_job_has_ended() -> None:
    runs: list[int] = []
    tasks = BackgroundTasks(max_jobs=10)

    async def work(n: int) -> None:
        runs.append(n)

    tasks.spawn(work(1), name="mail", key="k")
    await tasks.drain(grace_seconds=1)
    tasks.spawn(work(2), name="mail", key="k")
    await tasks.drain(grace_seconds=1)

    assert runs == [1, 2]


async def test_when_full_new_work_is_dropped_with_one_warning_and_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="server.background")
    release = asyncio.Event()
    started: list[int] = []
    tasks = BackgroundTasks(max_jobs=3)

    async def work(n: int) -> None:
        started.append(n)
        await release.wait()

    for n in range(100):
        tasks.spawn(work(n), name="issue a password reset", key=f"address {n}")
    await asyncio.sleep(0)

    assert tasks.under_way == 3 and tasks.dropped == 97
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "full" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    release.set()
    await tasks.drain(grace_seconds=1)
    tasks.spawn(work(100), name="issue a password reset", key="address 100")
    await tasks.drain(grace_seconds=1)
    assert started == [0, 1, 2, 100]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "97 piece(s) were dropped" in warnings[1].getMessage()


async def test_with_a_tracer_each_piece_is_a_span_under_the_span_that_spawned_it() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    from server.operations.tracing import tracing_with

    exporter = InMemorySpanExporter()
    tracer = tracing_with(SimpleSpanProcessor(exporter)).tracer
    tasks = BackgroundTasks(tracer=tracer)
    release = asyncio.Event()

    async def first() -> None:
        await release.wait()

    async def second() -> None:
        raise ConnectionRefusedError("smtp.example.com refused ada@example.com")

    with tracer.start_as_current_span("first RPC") as first_rpc:
        tasks.spawn(first(), name="mail one", key="ada@example.com")
    with tracer.start_as_current_span("second RPC") as second_rpc:
        # Waits behind the first piece (same key), then runs in its own RPC's context.
        tasks.spawn(second(), name="mail two", key="ada@example.com")
    release.set()
    await tasks.drain(grace_seconds=1)

    spans = {span.name: span for span in exporter.get_finished_spans()}
    for name, rpc in (("mail one", first_rpc), ("mail two", second_rpc)):
        parent = spans[name].parent
        assert parent is not None and parent.span_id == rpc.get_span_context().span_id, name
    failed = spans["mail two"]
    assert failed.status.status_code == StatusCode.ERROR
    assert dict(failed.attributes or {}) == {"error.type": "ConnectionRefusedError"}
    assert failed.events == ()  # no exception event: its message may name an address
    assert "ada@example.com" not in str(failed.status.description)
