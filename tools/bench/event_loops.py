"""Which event loop each server the bench compared ran on, as its own start-up line says.

The service (``user-service listening on ... event loop uvloop)``) and the floor and the limit
(``serving on ..., event loop uvloop``, from ``tools.bench.bare_server``) each log the loop they
run on, and all three take it from USER_SERVICE_EVENT_LOOP (``--service-setting
EVENT_LOOP=asyncio`` changes it for all three alike). results.json records what they logged, so
a run's figures say which loop they were measured on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tools.bench.processes import Child

UNKNOWN = "unknown"  # the log names no loop (a server that died early, or an older one)
_LOGGED = re.compile(r"event loop (uvloop|asyncio)\b")


def logged_event_loop(text: str) -> str:
    """The loop a server's log says it runs on (its last such line), or ``UNKNOWN``."""
    found = _LOGGED.findall(text)
    return found[-1] if found else UNKNOWN


def event_loops(children: Iterable[Child]) -> dict[str, str]:
    """Each child's name and the loop its log names."""
    return {
        child.name: logged_event_loop(child.log_path.read_text(errors="replace"))
        for child in children
    }
