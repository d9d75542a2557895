"""The progress line on stderr: redrawn in place on a terminal, else a line every few seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TextIO

TERMINAL_INTERVAL_SECONDS = 0.5
LOG_INTERVAL_SECONDS = 5.0


class Progress:
    """Shows what ``status()`` says, periodically, until stopped."""

    def __init__(self, stream: TextIO, status: Callable[[float], str]) -> None:
        self._stream = stream
        self._status = status
        self._in_place = stream.isatty()
        self._started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stops updating and shows the final state once more, on a line of its own."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._show(final=True)

    async def _run(self) -> None:
        interval = TERMINAL_INTERVAL_SECONDS if self._in_place else LOG_INTERVAL_SECONDS
        while True:
            await asyncio.sleep(interval)
            self._show(final=False)

    def _show(self, *, final: bool) -> None:
        line = self._status(time.monotonic() - self._started)
        if self._in_place:
            self._stream.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
