"""The progress line: redrawn in place on a terminal (a real pty), one summary line on a pipe."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from datatools.progress import REDRAW_SECONDS, Progress


class Ticks:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # a pty master reports EIO once the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


class Terminal:
    """A writable stream on a pseudo-terminal, read by a thread as it is written (a terminal's
    buffer is small: a writer nobody reads from would block)."""

    def __init__(self) -> None:
        self._controller, device = os.openpty()
        self.stream = os.fdopen(device, "w", encoding="utf-8")
        self._shown: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        self._shown.append(read_all(self._controller))

    def shown(self) -> str:
        """Everything written, once the stream is closed."""
        if not self.stream.closed:
            self.stream.close()
        self._reader.join(timeout=10)
        return "".join(self._shown)

    def close(self) -> None:
        if not self.stream.closed:
            self.stream.close()
        self._reader.join(timeout=10)
        os.close(self._controller)


@contextmanager
def terminal() -> Iterator[Terminal]:
    opened = Terminal()
    try:
        yield opened
    finally:
        opened.close()


def run(progress: Progress, clock: Ticks, items: int) -> None:
    for _ in range(items):
        clock.now += REDRAW_SECONDS
        progress.advance()
    progress.finish()


def test_on_a_terminal_the_line_is_redrawn_in_place_with_count_rate_and_estimate() -> None:
    clock = Ticks()
    with terminal() as tty:
        progress = Progress("export", unit="users", total=10, stream=tty.stream, clock=clock)
        run(progress, clock, 4)
        shown = tty.shown()

    assert progress.live
    # Four redraws, then the summary in the same place.
    assert shown.count("\rexport") == 5, shown
    assert "export: 2 users, 5/s, 20% of ~10, ~1 s left" in shown
    # The terminal turns "\n" into "\r\n": the line ends once, after the summary.
    assert shown.rstrip().endswith("export: 4 users in 0.8 s (5/s)")
    assert shown.count("\n") == 1


def test_on_a_terminal_redraws_are_limited_to_a_few_a_second() -> None:
    clock = Ticks()
    with terminal() as tty:
        progress = Progress("import", stream=tty.stream, clock=clock)
        for _ in range(1000):
            clock.now += REDRAW_SECONDS / 100
            progress.advance()
        shown = tty.shown()

    assert 5 <= shown.count("\rimport") <= 11, shown


def test_on_a_pipe_nothing_is_drawn_and_one_summary_line_is_written() -> None:
    clock = Ticks()
    reader, writer = os.pipe()
    stream = os.fdopen(writer, "w", encoding="utf-8")
    progress = Progress("migrate", total=10, stream=stream, clock=clock)

    run(progress, clock, 4)
    stream.close()
    written = read_all(reader)
    os.close(reader)

    assert not progress.live
    assert "\r" not in written
    assert written == "migrate: 4 items in 0.8 s (5/s)\n"


def test_a_total_below_the_count_done_shows_no_more_than_100_percent() -> None:
    clock = Ticks()
    progress = Progress("export", total=3, stream=io.StringIO(), clock=clock)
    clock.now += 1
    progress.advance(5)

    assert progress.line() == "export: 5 items, 5/s, 100% of ~3"


def test_items_done_by_an_earlier_run_count_toward_the_total_but_not_the_rate() -> None:
    clock = Ticks()
    progress = Progress("export", total=100, initial=50, stream=io.StringIO(), clock=clock)
    clock.now += 10
    progress.advance(10)

    assert progress.line() == "export: 60 items, 1/s, 60% of ~100, ~40 s left"
    assert progress.summary() == "export: 10 items in 10.0 s (1/s)"


def test_off_a_terminal_plain_lines_come_every_few_seconds_when_asked() -> None:
    clock = Ticks()
    stream = io.StringIO()
    progress = Progress(
        "import-legacy", unit="users", total=16, stream=stream, clock=clock, plain_seconds=1.0
    )
    for _ in range(16):
        clock.now += 0.25
        progress.advance()
    progress.finish()

    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 5, lines  # one a second for four seconds, and the summary
    assert lines[0].startswith("import-legacy: 4 users, 4/s, 25% of ~16")
    assert lines[-1] == "import-legacy: 16 users in 4.0 s (4/s)"
