"""A one-line progress display for long commands: redrawn with \\r on a terminal, silent elsewhere.

On a terminal the line shows the items done, the rate and, when a total is known, the share
done and the time left; it is redrawn at most a few times a second. Anywhere else (a pipe, a
file, a CI log) nothing is drawn, and ``finish`` writes one summary line.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_SECONDS = 0.2


class Progress:
    """Counts items done and shows it on ``stream`` (standard error by default)."""

    def __init__(
        self,
        label: str,
        *,
        unit: str = "items",
        total: int | None = None,
        initial: int = 0,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        plain_seconds: float | None = None,
    ) -> None:
        self.label, self.unit, self.total = label, unit, total
        # ``initial`` items were done by an earlier run: counted, but not in the rate.
        self.done = self._initial = initial
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = self._last_drawn = clock()
        self._drawn_width = 0
        # Off a terminal, a plain line every ``plain_seconds`` (None: only the summary).
        self._plain_seconds = plain_seconds
        try:
            self.live = self._stream.isatty()
        except ValueError:  # a closed stream
            self.live = False

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.live and self._clock() - self._last_drawn >= REDRAW_SECONDS:
            self._draw(self.line())
        elif (
            not self.live
            and self._plain_seconds is not None
            and self._clock() - self._last_drawn >= self._plain_seconds
        ):
            self._stream.write(self.line() + "\n")
            self._stream.flush()
            self._last_drawn = self._clock()

    def finish(self, summary: str | None = None) -> None:
        """Replaces the progress line by ``summary`` (default: the final count), and a newline."""
        text = summary if summary is not None else self.summary()
        if self.live:
            self._draw(text)
            self._stream.write("\n")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def rate(self) -> float:
        elapsed = self._clock() - self._started
        return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        text = f"{self.label}: {self.done} {self.unit}, {rate:.0f}/s"
        if self.total:
            # The total may be an estimate (DynamoDB's ItemCount lags): never past 100 %.
            share = min(self.done / self.total, 1.0)
            text += f", {share:.0%} of ~{self.total}"
            if rate > 0 and self.done < self.total:
                text += f", ~{_duration((self.total - self.done) / rate)} left"
        return text

    def summary(self) -> str:
        elapsed = self._clock() - self._started
        this_run = self.done - self._initial
        return f"{self.label}: {this_run} {self.unit} in {elapsed:.1f} s ({self.rate():.0f}/s)"

    def _draw(self, text: str) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 20)
        text = text[:width]
        # Spaces wipe what a longer previous line left; no terminal escape codes needed.
        self._stream.write("\r" + text.ljust(self._drawn_width))
        self._stream.flush()
        self._drawn_width = len(text)
        self._last_drawn = self._clock()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
