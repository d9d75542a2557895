"""Watches every DynamoDB call through botocore's events: throttles and retries are logged, and
each call's outcome, latency, retries and throttles go to an optional observer (metrics); with
a tracer, each call is a client span (OpenTelemetry's aws-api and DynamoDB conventions), child of
the span current when the call was made (the RPC's).

Only operation names, table names, error codes, counts and consumed capacity are read: never a
request's other parameters, which hold email addresses and token hashes.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any, Protocol

from opentelemetry.context import create_key, get_value
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, get_current_span

from persistence.errors import THROTTLING_CODES

log = logging.getLogger(__name__)

OK = "ok"
# Set (to True) in an OpenTelemetry context whose DynamoDB calls are not to be spans: a
# WatchEvents stream, which may last hours and polls the events table every second.
UNTRACED_CALLS = create_key("user-service.untraced-dynamodb-calls")
# Where the call's start and span are kept in botocore's per-call context dict, until it ends.
_STARTED = "user_service_started"
_SPAN = "user_service_span"
# The operations that can return the capacity they consumed; with tracing on, they are asked to.
CAPACITY_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


class DynamoDbCallObserver(Protocol):
    """Told about every DynamoDB call the client makes (implemented in server.operations)."""

    def dynamodb_call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """A call ended: ``outcome`` is "ok", the AWS error code, or the exception's class."""

    def dynamodb_call_retried(self, operation: str, retries: int) -> None:
        """A call needed ``retries`` attempts beyond the first."""

    def dynamodb_throttled(self, operation: str) -> None:
        """One attempt of a call was refused for throttling."""


class _Call:
    """botocore's context dict of the call under way, once its hooks have seen it."""

    __slots__ = ("context",)

    def __init__(self) -> None:
        self.context: dict[str, Any] | None = None


# The DynamoDB call the current task is making (set by the client's wrapped _make_api_call).
_current_call: ContextVar[_Call | None] = ContextVar("dynamodb_call", default=None)


class CallHooks:
    """botocore event handlers (before-call, needs-retry, after-call, after-call-error).

    Each returns None, so botocore's own retry handler, which answers needs-retry, decides alone.

    With a ``tracer``, a call made inside traced work (an RPC's span or the background work's
    is current) is a span; the readiness probe's calls are not. The span starts when the
    parameters are built (before-parameter-build, where the table names are read and
    ``ReturnConsumedCapacity=TOTAL`` is asked for where the operation has it and the caller did
    not ask already), gets an event per failed attempt, and ends with the call (retries,
    consumed capacity, error code). A call cancelled mid-way (the RPC's deadline passed or its
    caller went away while the answer was awaited) fires no event: ``attach`` wraps the client's
    calls so that such a call ends all the same, its outcome the exception's class
    (``CancelledError``).
    """

    def __init__(
        self, observer: DynamoDbCallObserver | None = None, *, tracer: Tracer | None = None
    ) -> None:
        self._observer = observer
        self._tracer = tracer

    def attach(self, client: Any) -> None:
        """Registers the handlers on ``client``'s events, and wraps its calls (every operation
        method calls ``_make_api_call``) so that a call its events never finish (cancelled, or
        an exception between them) is finished when it leaves the client."""
        self.register(client.meta.events)
        if self._tracer is None and self._observer is None:
            return  # nothing is kept per call, so nothing is left to finish
        make_api_call = client._make_api_call

        async def finishing_make_api_call(operation_name: str, api_params: Any) -> Any:
            call = _Call()
            token = _current_call.set(call)
            try:
                return await make_api_call(operation_name, api_params)
            except BaseException as error:  # asyncio.CancelledError above all
                context = call.context
                if context is not None and (_SPAN in context or _STARTED in context):
                    self._finished(operation_name, type(error).__name__, context)
                raise
            finally:
                _current_call.reset(token)

        client._make_api_call = finishing_make_api_call

    def register(self, events: Any) -> None:
        """Registers the handlers on a client's event emitter (``client.meta.events``)."""
        if self._tracer is not None:
            events.register("before-parameter-build.dynamodb", self.before_parameter_build)
        if self._observer is not None:  # only the observer wants latencies
            events.register("before-call.dynamodb", self.before_call)
        events.register("needs-retry.dynamodb", self.needs_retry)
        events.register("after-call.dynamodb", self.after_call)
        events.register("after-call-error.dynamodb", self.after_call_error)

    def before_parameter_build(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        assert self._tracer is not None  # registered only with one
        _seen(context)
        if not get_current_span().get_span_context().is_valid or get_value(UNTRACED_CALLS):
            return  # outside any traced work (the readiness probe, start-up), or in a stream
        operation = model.name
        attributes: dict[str, Any] = {
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": operation,
            "db.system": "dynamodb",
            "db.operation": operation,
        }
        tables = _table_names(params)
        if tables:
            attributes["aws.dynamodb.table_names"] = tables
        if operation in CAPACITY_OPERATIONS:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")
        context[_SPAN] = self._tracer.start_span(
            f"DynamoDB.{operation}", kind=SpanKind.CLIENT, attributes=attributes
        )

    def before_call(self, context: dict[str, Any], **_: Any) -> None:
        _seen(context)
        context[_STARTED] = time.perf_counter()

    def needs_retry(
        self,
        operation: Any,
        attempts: int,
        response: tuple[Any, dict[str, Any]] | None = None,
        caught_exception: BaseException | None = None,
        request_dict: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Called after every attempt, whether or not botocore then retries it."""
        span: Span | None = ((request_dict or {}).get("context") or {}).get(_SPAN)
        if span is not None:
            failure = (
                type(caught_exception).__name__
                if caught_exception is not None
                else (None if response is None else _error_code(response[1]))
            )
            if failure is not None:
                span.add_event("attempt failed", {"attempt": attempts, "error.type": failure})
        if response is None:
            return
        code = _error_code(response[1])
        if code in THROTTLING_CODES:
            log.warning(
                "DynamoDB %s throttled (attempt %d): %s",
                operation.name,
                attempts,
                code,
                extra={"operation": operation.name, "attempt": attempts, "error_code": code},
            )
            if self._observer is not None:
                self._observer.dynamodb_throttled(operation.name)

    def after_call(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        outcome = OK if http_response.status_code < 300 else (_error_code(parsed) or "HTTPError")
        span: Span | None = context.get(_SPAN)
        if span is not None:
            span.set_attribute("http.response.status_code", http_response.status_code)
            capacity = parsed.get("ConsumedCapacity")
            if capacity:
                entries = capacity if isinstance(capacity, list) else [capacity]
                span.set_attribute(
                    "aws.dynamodb.consumed_capacity",
                    [json.dumps(entry, sort_keys=True, default=str) for entry in entries],
                )
        self._finished(model.name, outcome, context)

    def after_call_error(
        self, exception: BaseException, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        """The request could not be sent or answered (connection refused, timeout, deadline)."""
        self._finished(event_name.rpartition(".")[2], type(exception).__name__, context)

    def _finished(self, operation: str, outcome: str, context: dict[str, Any]) -> None:
        retries = int((context.get("retries") or {}).get("attempt", 1)) - 1
        span: Span | None = context.pop(_SPAN, None)
        if span is not None:
            _end_span(span, outcome, retries)
        if retries > 0:
            log.warning(
                "DynamoDB %s needed %d retries: %s",
                operation,
                retries,
                outcome,
                extra={"operation": operation, "retries": retries, "outcome": outcome},
            )
        observer = self._observer
        started = context.pop(_STARTED, None)  # popped, as the span is: the call is finished
        if observer is None:
            return
        if started is not None:
            observer.dynamodb_call_finished(operation, outcome, time.perf_counter() - started)
        if retries > 0:
            observer.dynamodb_call_retried(operation, retries)


def _seen(context: dict[str, Any]) -> None:
    call = _current_call.get()
    if call is not None:
        call.context = context


def _error_code(parsed: dict[str, Any]) -> str | None:
    code = (parsed.get("Error") or {}).get("Code")
    return str(code) if code else None


def _end_span(span: Span, outcome: str, retries: int) -> None:
    span.set_attribute("aws.dynamodb.retries", retries)
    if outcome != OK:
        span.set_attribute("error.type", outcome)  # an AWS error code or an exception's class
        span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()


def _table_names(params: dict[str, Any]) -> list[str]:
    """The tables a call's parameters name: TableName, a batch's RequestItems, a transaction's
    items (Put, Update, Delete, ConditionCheck, Get)."""
    names: set[str] = set()
    table = params.get("TableName")
    if isinstance(table, str):
        names.add(table)
    items = params.get("RequestItems")
    if isinstance(items, dict):
        names.update(name for name in items if isinstance(name, str))
    for item in params.get("TransactItems") or ():
        for action in item.values() if isinstance(item, dict) else ():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    return sorted(names)
