"""Which event loop ``serve`` runs on: uvloop by default, asyncio's own when told so.

uvloop is libuv under asyncio's API. The bench's floor and limit run on the same loop as the
service (``tools.bench.bare_server``), so that the service's ratios to them compare like with
like. ``USER_SERVICE_EVENT_LOOP=asyncio`` goes back to asyncio's loop. uvloop is not built for
Windows; the package is not installed there, and asking for it says so in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopKind = Literal["uvloop", "asyncio"]
DEFAULT_EVENT_LOOP: EventLoopKind = "uvloop"

_T = TypeVar("_T")


class EventLoopUnavailable(RuntimeError):
    """The configured event loop cannot be had on this machine (uvloop is not installed)."""


def loop_factory(kind: EventLoopKind) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of ``kind``, for ``asyncio.Runner(loop_factory=...)``."""
    if kind == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        raise EventLoopUnavailable(
            "USER_SERVICE_EVENT_LOOP=uvloop needs the uvloop package (not built for Windows); "
            "install it, or set USER_SERVICE_EVENT_LOOP=asyncio"
        ) from None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, _T], kind: EventLoopKind) -> _T:
    """``asyncio.run(main)`` on a new loop of ``kind``."""
    try:
        factory = loop_factory(kind)
    except EventLoopUnavailable:
        main.close()  # never awaited; closing it spares the "never awaited" warning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_kind(loop: asyncio.AbstractEventLoop) -> EventLoopKind:
    """Which kind ``loop`` is: the start-up line reports the loop running, not the setting."""
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"
