"""Per RPC: a request id the caller gets back, one access-log line, and the RPC metrics.

The interceptor comes first of all, so calls that the drain gate or caller authentication refuse
are logged and counted too.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import Token
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health
from opentelemetry import trace

from server.interceptors.request_id import (
    METADATA_KEY,
    current_request_id,
    new_request_id,
    request_id_from,
)
from server.interceptors.wrapping import WrappedHandlers, with_behaviour
from server.operations.metrics import MethodMetrics, Metrics

ACCESS_LOG = logging.getLogger("user_service.access")
# Orchestrators and load balancers ask for health every few seconds on every replica: at INFO
# those lines would drown the calls that matter. Their metrics are kept all the same.
_QUIET_PREFIX = f"/{health.SERVICE_NAME}/"
# A caller whose deadline passes cancels its call; that cancellation reaches the server a little
# before the server's own copy of the deadline (taken when the call arrived, so later by the
# transit) has passed. A cancellation this close to the deadline is counted as the deadline's.
DEADLINE_SLACK_SECONDS = 0.5

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behaviour = Callable[..., Any]
_OK = grpc.StatusCode.OK
# What logging itself records when it does not look for the caller (logging._srcfile = None).
_NO_FILE = "(unknown file)"
_NO_FUNCTION = "(unknown function)"
# An enum member's name is a descriptor call; a dict lookup is cheaper.
_CODE_NAMES = {code: code.name for code in grpc.StatusCode}


class ObservedCalls(grpc.aio.ServerInterceptor):
    """Gives every call a request id (the caller's sane ``x-request-id``, else a new one),
    returns it in the trailing metadata, logs one line when the call ends (method, code,
    duration, peer, request id: never a message, nor other metadata), and feeds ``metrics``.

    With ``traced`` (tracing on: server.interceptors.tracing wraps this one), the line also
    carries the trace and span ids of the call's server span. With tracing off there is no span
    of this service to name, so the line carries none (nor is any caller's traceparent read).
    """

    def __init__(self, metrics: Metrics | None = None, *, traced: bool = False) -> None:
        self._metrics = metrics
        self._traced = traced
        self._handlers = WrappedHandlers(self._observed_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # an unknown method: gRPC answers UNIMPLEMENTED at once
        return self._handlers.get(handler_call_details.method, handler)

    def _observed_handler(self, method: str, handler: _Handler) -> _Handler:
        observation = _Observation(
            method,
            logging.DEBUG if method.startswith(_QUIET_PREFIX) else logging.INFO,
            None if self._metrics is None else self._metrics.for_method(method),
            self._traced,
        )
        return with_behaviour(handler, observation.unary, observation.stream)


class _Observation:
    """What is known of a method before any call: its name, log level and metrics."""

    __slots__ = ("level", "method", "metrics", "traced")

    def __init__(
        self, method: str, level: int, metrics: MethodMetrics | None, traced: bool = False
    ) -> None:
        self.method = method
        self.level = level
        self.metrics = metrics
        self.traced = traced

    def unary(self, behaviour: _Behaviour) -> _Behaviour:
        async def observed(request: Any, context: _Context) -> Any:
            token, peer, started = self.begin(context)
            try:
                reply = behaviour(request, context)
                if inspect.isawaitable(reply):
                    reply = await reply
            except BaseException as error:  # asyncio.CancelledError too: deadline, or caller gone
                self.end(context, failure_code(error, context), peer, started, token)
                raise
            self.end(context, status_code_of(context.code()), peer, started, token)
            return reply

        return observed

    def stream(self, behaviour: _Behaviour) -> _Behaviour:
        # grpc.aio picks the streaming style from the function's kind, so the wrapper keeps it.
        if not inspect.isasyncgenfunction(behaviour):
            return self.unary(written(behaviour))

        async def observed(request: Any, context: _Context) -> AsyncIterator[Any]:
            token, peer, started = self.begin(context)
            try:
                async for reply in behaviour(request, context):
                    yield reply
            except BaseException as error:  # GeneratorExit too: the caller went away
                self.end(context, failure_code(error, context), peer, started, token)
                raise
            self.end(context, status_code_of(context.code()), peer, started, token)

        return observed

    def begin(self, context: _Context) -> tuple[Token[str | None], str, float]:
        request_id = _request_id(context.invocation_metadata())
        token = current_request_id.set(request_id)
        context.set_trailing_metadata(((METADATA_KEY, request_id),))
        # Read now: once a call is cancelled its peer is gone. Only when the line will be written.
        peer = context.peer() if ACCESS_LOG.isEnabledFor(self.level) else ""
        if self.metrics is not None:
            self.metrics.in_flight.inc()
        return token, peer, time.perf_counter()

    def end(
        self,
        context: _Context,
        code: grpc.StatusCode,
        peer: str,
        started: float,
        token: Token[str | None],
    ) -> None:
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.finished(code, seconds)
        if ACCESS_LOG.isEnabledFor(self.level):
            milliseconds = round(seconds * 1000, 3)
            code_name = _CODE_NAMES[code]
            fields: dict[str, object] = {
                "method": self.method,
                "code": code_name,
                "duration_ms": milliseconds,
                "peer": peer,
            }
            if self.traced:
                span = trace.get_current_span().get_span_context()
                if span.is_valid:
                    fields["trace_id"] = trace.format_trace_id(span.trace_id)
                    fields["span_id"] = trace.format_span_id(span.span_id)
            # Made and handled as Logger.log would, less its walk up the stack for the caller's
            # file, line and function: no format prints them (logging_config). The record
            # factory (secrets' redaction), filters, handlers and levels all apply.
            ACCESS_LOG.handle(
                ACCESS_LOG.makeRecord(
                    ACCESS_LOG.name,
                    self.level,
                    _NO_FILE,
                    0,
                    f"{self.method} {code_name} {milliseconds:.1f} ms from {peer}",
                    (),  # the message is made once here, not by each reader of the record
                    None,
                    _NO_FUNCTION,
                    fields,
                )
            )
        try:
            current_request_id.reset(token)
        except ValueError:
            pass  # a stream closed from another context (the call's task is gone anyway)


def _request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == METADATA_KEY:
            return request_id_from(value)
    return new_request_id()


def status_code_of(code: object) -> grpc.StatusCode:
    """The status a handler left on its context: None (never set) is OK."""
    if code is None:
        return _OK
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def failure_code(error: BaseException, context: _Context) -> grpc.StatusCode:
    """The status a call ends with when its handler raised ``error``."""
    if isinstance(error, grpc.aio.AbortError):
        return status_code_of(context.code())
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        remaining = context.time_remaining()
        if remaining is not None and remaining < DEADLINE_SLACK_SECONDS:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN  # what gRPC answers for an exception a handler let out


def written(behaviour: _Behaviour) -> _Behaviour:
    """A streaming behaviour that is no async generator, as a coroutine writing its replies."""

    async def writing(request: Any, context: _Context) -> None:
        replies = behaviour(request, context)
        if inspect.isawaitable(replies):
            await replies  # the handler writes its replies with context.write
            return
        for reply in replies or ():  # a plain generator; it runs on the event loop
            await context.write(reply)

    return writing
