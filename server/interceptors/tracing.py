"""A server span per UserService call (OpenTelemetry rpc conventions), installed only when
tracing is on (server.operations.tracing).

The span is the current one while the call runs: the DynamoDB calls it makes
(persistence.call_observer), the work it leaves for after the reply (server.background) and the
legacy-auth request (server.legacy_auth) become its children, and the access-log line
(observed_calls, inside it) carries its trace and span ids. Its parent is the caller's W3C
``traceparent`` (and ``tracestate``) metadata when that is valid; otherwise it starts a trace.
A stream (WatchEvents) is one span for its whole length; its DynamoDB polls, every second for
hours, are not spans.

Only the method and the status code are put on it: never a request, a reply, the status message
or other metadata (they hold emails and tokens).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable
from contextvars import Token
from typing import Any, TypeAlias

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from persistence.call_observer import UNTRACED_CALLS
from server.interceptors.observed_calls import failure_code, status_code_of, written
from server.interceptors.wrapping import WrappedHandlers, with_behaviour

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_CARRIED = (TRACEPARENT, TRACESTATE)
# W3C Trace Context, version 00 (a later version's header starts the same way and may be longer:
# its first 55 characters are read as version 00's). Anything else is no parent, quietly: the
# SDK would log a warning per call for a malformed header, a flood any caller could start.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?", re.ASCII)
MAX_TRACEPARENT_LENGTH = 256
# The spec's limit: 32 list members, and a vendor may truncate what exceeds 512 characters.
MAX_TRACESTATE_LENGTH = 512

# OpenTelemetry's rpc conventions: on a server span, only these codes make the span an error;
# the others (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) are the caller's to judge.
SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behaviour = Callable[..., Any]


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each call of ``traced_services`` in a server span named after its method
    (``biome.user.v1.UserService/GetUser``). Health checks and reflection are not traced: probes
    every few seconds would fill the traces with nothing."""

    def __init__(
        self, tracer: Tracer, propagator: TextMapPropagator, traced_services: Collection[str]
    ) -> None:
        self._tracer = tracer
        self._propagator = propagator
        self._prefixes = tuple(f"/{name}/" for name in traced_services)
        self._handlers = WrappedHandlers(self._traced_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(self._prefixes):
            return handler
        return self._handlers.get(handler_call_details.method, handler)

    def _traced_handler(self, method: str, handler: _Handler) -> _Handler:
        span_of = _SpanOf(self._tracer, self._propagator, method)
        return with_behaviour(handler, span_of.unary, span_of.stream)


class _SpanOf:
    """What a method's spans share: name, attributes, tracer and propagator."""

    __slots__ = ("attributes", "name", "propagator", "tracer")

    def __init__(self, tracer: Tracer, propagator: TextMapPropagator, method: str) -> None:
        self.tracer = tracer
        self.propagator = propagator
        self.name = method.lstrip("/")
        service, _, rpc = self.name.partition("/")
        self.attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc}

    def unary(self, behaviour: _Behaviour) -> _Behaviour:
        async def traced(request: Any, context: _Context) -> Any:
            span, token = self.begin(context)
            try:
                reply = behaviour(request, context)
                if inspect.isawaitable(reply):
                    reply = await reply
            except BaseException as error:  # asyncio.CancelledError too: deadline, or caller gone
                self.end(span, failure_code(error, context), error)
                raise
            finally:
                otel_context.detach(token)
            self.end(span, status_code_of(context.code()), None)
            return reply

        return traced

    def stream(self, behaviour: _Behaviour) -> _Behaviour:
        if not inspect.isasyncgenfunction(behaviour):
            return self.unary(written(behaviour))

        async def traced(request: Any, context: _Context) -> AsyncIterator[Any]:
            span, token = self.begin(context, untraced_store_calls=True)
            try:
                async for reply in behaviour(request, context):
                    yield reply
            except GeneratorExit as error:
                # Closed from elsewhere (the caller went away): the context is not the call's.
                self.end(span, failure_code(error, context), None)
                raise
            except BaseException as error:
                self.end(span, failure_code(error, context), error)
                otel_context.detach(token)
                raise
            self.end(span, status_code_of(context.code()), None)
            otel_context.detach(token)

        return traced

    def begin(
        self, context: _Context, *, untraced_store_calls: bool = False
    ) -> tuple[Span, Token[Context]]:
        """The call's span, started and made current. ``untraced_store_calls``: its DynamoDB
        calls are no spans (a stream's polls would make thousands under one span)."""
        parent = self.parent_of(context.invocation_metadata())
        span = self.tracer.start_span(
            self.name, context=parent, kind=SpanKind.SERVER, attributes=self.attributes
        )
        current = trace.set_span_in_context(span, parent)
        if untraced_store_calls:
            current = otel_context.set_value(UNTRACED_CALLS, True, current)
        return span, otel_context.attach(current)

    def parent_of(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Context:
        """The caller's span context from its metadata; an empty context (a new trace) when it
        sent none, or none that is valid."""
        carrier = {
            key: value
            for key, value in metadata or ()
            if key in _CARRIED and isinstance(value, str)
        }
        traceparent = carrier.get(TRACEPARENT, "")
        if len(traceparent) > MAX_TRACEPARENT_LENGTH or not _TRACEPARENT.fullmatch(traceparent):
            return Context()
        if len(carrier.get(TRACESTATE, "")) > MAX_TRACESTATE_LENGTH:
            del carrier[TRACESTATE]  # the parent without its vendors' state
        return self.propagator.extract(carrier, context=Context())

    @staticmethod
    def end(span: Span, code: grpc.StatusCode, error: BaseException | None) -> None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in SERVER_ERROR_CODES:
            # The code's name only: a status message may quote the request.
            span.set_status(Status(StatusCode.ERROR, code.name))
            if error is not None and not isinstance(error, grpc.aio.AbortError):
                span.set_attribute("error.type", type(error).__qualname__)
            else:
                span.set_attribute("error.type", code.name)
        span.end()
