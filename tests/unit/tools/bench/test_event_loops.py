"""Which event loop each compared server ran on, read from its own start-up line."""

from __future__ import annotations

from tools.bench.event_loops import UNKNOWN, logged_event_loop
from tools.bench.report import describe_event_loops

SERVICE_LINE = (
    '{"time": "2026-12-07T06:40:00.000Z", "level": "INFO", "logger": "user-service", "message": '
    '"user-service listening on 127.0.0.1:40001 (profile development, plaintext, callers not '
    'authenticated, event loop uvloop)"}\n'
)
FLOOR_LINE = "serving on 127.0.0.1:40002, event loop asyncio\n"


def test_the_service_and_the_bare_servers_start_up_lines_name_their_loop() -> None:
    assert logged_event_loop("moto says hello\n" + SERVICE_LINE) == "uvloop"
    assert logged_event_loop(FLOOR_LINE) == "asyncio"


def test_a_log_naming_no_loop_is_unknown() -> None:
    assert logged_event_loop("Traceback (most recent call last):\n  ...\n") == UNKNOWN
    assert logged_event_loop("event loop uvloopish\n") == UNKNOWN


def test_the_report_names_the_loop_once_when_all_agree_else_each_server_s() -> None:
    agreed = {"service-standin": "uvloop", "floor-standin": "uvloop", "limit-standin": "uvloop"}
    assert describe_event_loops(agreed) == "uvloop (all 3)"
    mixed = {"service-standin": "uvloop", "floor-standin": "asyncio"}
    assert describe_event_loops(mixed) == "service-standin uvloop, floor-standin asyncio"
    assert describe_event_loops({}) == "none started"
