"""The access line of ObservedCalls, through a stand-in context: the line Logger.log would write,
field for field in either format, flushed when the call ends, held back by the same level and
filters, and made by the process's record factory, so that secrets' redaction applies to it as
to every record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from server.interceptors.observed_calls import ObservedCalls
from server.interceptors.request_id import current_request_id
from server.operations.logging_config import LogFormat, configure_logging
from server.operations.metrics import Metrics

METHOD = "/biome.user.v1.UserService/GetUser"
PEER = "ipv4:127.0.0.1:58378"
# A JWT's form (header.payload.signature), which the record factory redacts from any message.
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


class FlushCountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushed_at: list[int] = []  # how much had been written at each flush

    def flush(self) -> None:
        self.flushed_at.append(len(self.getvalue()))
        super().flush()


@dataclass
class StandInContext:
    """What ObservedCalls asks of a grpc.aio.ServicerContext."""

    peer_address: str = PEER
    status: grpc.StatusCode | None = None
    trailers: Any = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "req-42"),)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailers = metadata

    def peer(self) -> str:
        return self.peer_address

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def time_remaining(self) -> float:
        return 5.0


@dataclass
class CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put the root's handlers and level back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


async def call(context: StandInContext, status: grpc.StatusCode | None = None) -> None:
    """One GetUser call through the interceptor, its handler leaving ``status`` on the context."""

    async def behaviour(request: bytes, context: StandInContext) -> bytes:
        context.status = status
        return request

    async def continuation(details: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(behaviour)

    handler = await ObservedCalls(Metrics()).intercept_service(continuation, CallDetails(METHOD))  # type: ignore[arg-type]
    assert handler is not None
    await handler.unary_unary(b"request", context)  # type: ignore[arg-type, misc]


def as_logger_log_would(stream: io.StringIO, code: str, duration_ms: float) -> str:
    """The access line Logger.log writes, with the same message and fields, during the call."""
    token = current_request_id.set("req-42")
    try:
        logging.getLogger("user_service.access").info(
            "%s %s %.1f ms from %s",
            METHOD,
            code,
            duration_ms,
            PEER,
            extra={"method": METHOD, "code": code, "duration_ms": duration_ms, "peer": PEER},
        )
    finally:
        current_request_id.reset(token)
    return stream.getvalue().splitlines()[-1]


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_the_access_line_is_the_one_logger_log_would_write(log_format: LogFormat) -> None:
    stream = io.StringIO()
    configure_logging("INFO", log_format=log_format, stream=stream)

    await call(StandInContext(), grpc.StatusCode.NOT_FOUND)

    [line] = stream.getvalue().splitlines()
    if log_format == "json":
        entry = json.loads(line)
        expected = json.loads(as_logger_log_would(stream, "NOT_FOUND", entry["duration_ms"]))
        assert list(entry) == [
            "time",
            "level",
            "logger",
            "message",
            "method",
            "code",
            "duration_ms",
            "peer",
            "request_id",
        ]
        assert {**entry, "time": None} == {**expected, "time": None}
        assert entry["message"] == f"{METHOD} NOT_FOUND {entry['duration_ms']:.1f} ms from {PEER}"
    else:
        _, rest = line.split(" ", 1)  # the time
        duration = float(rest.split(" NOT_FOUND ")[1].split(" ms ")[0])
        _, expected_rest = as_logger_log_would(stream, "NOT_FOUND", duration).split(" ", 1)
        assert rest == expected_rest
        assert rest.startswith(f"INFO user_service.access: {METHOD} NOT_FOUND ")
        assert rest.endswith(f" ms from {PEER} request_id=req-42")


async def test_the_access_line_is_written_and_flushed_when_the_call_ends() -> None:
    stream = FlushCountingStream()
    configure_logging("INFO", log_format="json", stream=stream)

    await call(StandInContext())

    [line] = stream.getvalue().splitlines()
    assert json.loads(line)["code"] == "OK"
    assert stream.flushed_at == [len(stream.getvalue())]


async def test_the_access_line_is_made_by_the_record_factory_that_redacts_secrets() -> None:
    """The peer comes from gRPC (an address), never from the caller: this one is forged here to
    show that the access record, like every record, passes through the redacting factory."""
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)

    await call(StandInContext(peer_address=f"ipv4:10.0.0.1:443 {JWT}"))

    message = json.loads(stream.getvalue())["message"]
    assert JWT not in message
    assert message.endswith(" ms from ipv4:10.0.0.1:443 [REDACTED]")


@pytest.mark.parametrize("muted_by", ["level", "filter", "logging.disable"])
async def test_the_access_line_obeys_the_access_loggers_level_and_filters(muted_by: str) -> None:
    """Made without Logger.log, the line is still held back as Logger.log would hold it back: by
    the access logger's level, by a filter on it, and by logging.disable."""
    stream = io.StringIO()
    configure_logging("INFO", log_format="json", stream=stream)
    access = logging.getLogger("user_service.access")
    level, filters = access.level, list(access.filters)
    try:
        if muted_by == "level":
            access.setLevel(logging.WARNING)
        elif muted_by == "filter":
            access.addFilter(lambda record: record.levelno > logging.INFO)
        else:
            logging.disable(logging.INFO)

        await call(StandInContext())

        assert stream.getvalue() == ""
    finally:
        logging.disable(logging.NOTSET)
        access.setLevel(level)
        access.filters[:] = filters

    await call(StandInContext())  # the same call, nothing muting it

    assert json.loads(stream.getvalue())["code"] == "OK"
