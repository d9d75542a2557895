"""Work that runs after the reply (domain.ports.TaskRunner): tracked, logged, drained at exit."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

from persistence.deadline import clear_deadline

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Runs each piece of work in a task of its own and keeps it until it ends.

    A failure is logged with the error's type and message (domain and transport errors
    carry no secrets); it never reaches the caller, who has had the reply already.
    ``drain`` waits at shutdown for the work under way, so none is cut off mid-retry.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        # The work outlives the request, so the caller's deadline does not bind it.
        context = contextvars.copy_context()
        context.run(clear_deadline)
        task = asyncio.create_task(self._run(work, name), name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for the work under way; cancel what is left."""
        if not self._tasks:
            return
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if unfinished:
            names = ", ".join(sorted(task.get_name() for task in unfinished))
            log.warning("cut off at shutdown, unfinished: %s", names)

    async def _run(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception as error:
            log.error("%s failed: %s: %s", name, type(error).__name__, error)
