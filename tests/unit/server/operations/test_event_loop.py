"""The loop `serve` runs on: uvloop by default, asyncio when USER_SERVICE_EVENT_LOOP says so."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys

import pytest
import uvloop
from pydantic import ValidationError

import server.app
from server.cli import EXIT_FAILURE, EXIT_OK, _serve
from server.operations import event_loop
from server.operations.event_loop import EventLoopKind, EventLoopUnavailable, loop_kind
from server.settings import Settings, describe_invalid_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)


async def running_loop_kind() -> tuple[EventLoopKind, type[asyncio.AbstractEventLoop]]:
    loop = asyncio.get_running_loop()
    return loop_kind(loop), type(loop)


def test_the_default_is_uvloop() -> None:
    assert Settings().event_loop == "uvloop"


@pytest.mark.parametrize("value", ["asyncio", "ASYNCIO", " asyncio "])
def test_asyncio_opts_out_in_any_letter_case(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("USER_SERVICE_EVENT_LOOP", value)
    assert Settings().event_loop == "asyncio"


def test_an_unknown_loop_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_SERVICE_EVENT_LOOP", "trio")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert describe_invalid_settings(refused.value).startswith(
        "invalid setting USER_SERVICE_EVENT_LOOP:"
    )


def test_run_runs_on_a_loop_of_the_kind_asked() -> None:
    kind, loop_type = event_loop.run(running_loop_kind(), "uvloop")
    assert (kind, loop_type) == ("uvloop", uvloop.Loop)

    kind, loop_type = event_loop.run(running_loop_kind(), "asyncio")
    assert kind == "asyncio" and not issubclass(loop_type, uvloop.Loop)
    assert issubclass(loop_type, asyncio.SelectorEventLoop)


def test_without_the_uvloop_package_asking_for_it_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as on Windows, where it is not installed
    work = running_loop_kind()

    with pytest.raises(EventLoopUnavailable, match="USER_SERVICE_EVENT_LOOP=asyncio"):
        event_loop.run(work, "uvloop")

    assert inspect.getcoroutinestate(work) == inspect.CORO_CLOSED  # no "never awaited" warning
    assert event_loop.run(running_loop_kind(), "asyncio")[0] == "asyncio"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [({}, "uvloop"), ({"USER_SERVICE_EVENT_LOOP": "asyncio"}, "asyncio")],
)
def test_serve_runs_the_service_on_the_configured_loop(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: EventLoopKind
) -> None:
    ran_on: list[EventLoopKind] = []

    async def serve(settings: Settings) -> None:
        ran_on.append(loop_kind(asyncio.get_running_loop()))

    monkeypatch.setattr(server.app, "serve", serve)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    assert _serve(Settings()) == EXIT_OK
    assert ran_on == [expected]


def test_serve_without_uvloop_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def serve(settings: Settings) -> None:
        raise AssertionError("not reached")

    monkeypatch.setattr(server.app, "serve", serve)
    monkeypatch.setitem(sys.modules, "uvloop", None)

    assert _serve(Settings()) == EXIT_FAILURE
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("user-service: cannot serve: USER_SERVICE_EVENT_LOOP=uvloop needs")
