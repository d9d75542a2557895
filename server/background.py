"""Work that runs after the reply (domain.ports.TaskRunner): bounded, merged per key, logged, and
drained at exit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from persistence.deadline import clear_deadline

log = logging.getLogger(__name__)

DEFAULT_MAX_JOBS = 256


class BackgroundTasks:
    """Runs each piece of work in a task of its own and keeps it until it ends.

    At most ``max_jobs`` pieces are under way at once. Work spawned with a ``key`` while earlier
    work with that key is under way waits to run after it, and any more work for that key
    arriving meanwhile is merged into the waiting piece: a flood of requests for one address
    makes at most two jobs, not one per request, and every request is still seen by a job that
    starts after it arrived (the job under way may have read the account already). Work beyond
    the bound is dropped: one WARNING when the bound is first reached, DEBUG for each piece
    dropped after it, and one WARNING saying how many were dropped once there is room again. A
    dropped or merged coroutine is closed unstarted.

    A failure is logged with the error's type and message (domain and transport errors
    carry no secrets); it never reaches the caller, who has had the reply already.
    ``drain`` waits at shutdown for the work under way, so none is cut off mid-retry.

    Each piece runs in the context it was spawned in (the deadline aside): with a ``tracer``
    (tracing on), it is a span named after it, child of the span of the RPC that spawned it,
    and its DynamoDB calls and mail are that span's children.
    """

    def __init__(self, max_jobs: int = DEFAULT_MAX_JOBS, *, tracer: Tracer | None = None) -> None:
        if max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        self._max_jobs = max_jobs
        self._tracer = tracer
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_key: dict[str, asyncio.Task[None]] = {}
        # Per key whose job is under way: the one piece to run after it, and where it was spawned.
        self._waiting: dict[str, tuple[Coroutine[Any, Any, None], str, contextvars.Context]] = {}
        self._closing = False
        self._dropped = 0  # since the bound was last reached
        self.merged = 0  # in all, for tests and the curious
        self.dropped = 0

    @property
    def under_way(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str, key: str | None = None) -> None:
        earlier = self._by_key.get(key) if key is not None else None
        if key is not None and earlier is not None and not earlier.done():
            if key in self._waiting:
                work.close()
                self.merged += 1
            else:
                self._waiting[key] = (work, name, contextvars.copy_context())
            return
        self._start(work, name, key, contextvars.copy_context())

    def _start(
        self,
        work: Coroutine[Any, Any, None],
        name: str,
        key: str | None,
        context: contextvars.Context,
    ) -> None:
        if len(self._tasks) >= self._max_jobs:
            work.close()
            self._note_dropped(name)
            return
        if self._dropped:
            log.warning(
                "background work has room again; %d piece(s) were dropped while it was full",
                self._dropped,
            )
            self._dropped = 0
        # The work outlives the request, so the caller's deadline does not bind it.
        context.run(clear_deadline)
        task = asyncio.create_task(self._run(work, name), name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if key is not None:
            self._by_key[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for the work under way (and the work waiting behind it);
        cancel what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
            await asyncio.sleep(0)  # the ended tasks' callbacks start the work waiting behind
        if not self._tasks:
            return
        self._closing = True  # what still waits is closed, not started
        unfinished = set(self._tasks)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        await asyncio.sleep(0)  # their callbacks close the work that waited behind them
        self._closing = False
        names = ", ".join(sorted(task.get_name() for task in unfinished))
        log.warning("cut off at shutdown, unfinished: %s", names)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._by_key.get(key) is not task:
            return
        del self._by_key[key]
        waiting = self._waiting.pop(key, None)
        if waiting is not None:
            work, name, context = waiting
            if self._closing:
                work.close()
            else:
                self._start(work, name, key, context)

    def _note_dropped(self, name: str) -> None:
        self.dropped += 1
        self._dropped += 1
        if self._dropped == 1:
            log.warning(
                "background work is full (%d pieces under way): dropping new work such as "
                "'%s' until some ends (USER_SERVICE_MAX_BACKGROUND_JOBS)",
                self._max_jobs,
                name,
            )
        else:
            log.debug("background work is full: dropped '%s'", name)

    async def _run(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._tracer is None:
            await _logging_failure(work, name)
            return
        # Not the error's message on the span, nor its traceback: only its type.
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.INTERNAL, record_exception=False, set_status_on_exception=False
        ) as span:
            failure = await _logging_failure(work, name)
            if failure is not None:
                span.set_attribute("error.type", failure)
                span.set_status(Status(StatusCode.ERROR, failure))


async def _logging_failure(work: Coroutine[Any, Any, None], name: str) -> str | None:
    """Runs ``work``; logs its failure, and returns the failure's type name (None: it ran)."""
    try:
        await work
    except Exception as error:
        log.error("%s failed: %s: %s", name, type(error).__name__, error)
        return type(error).__name__
    return None
