"""Watches every DynamoDB call through botocore's events: throttles and retries are logged, and
each call's outcome, latency, retries and throttles go to an optional observer (metrics).

Only operation names, error codes and counts are read: never a request's parameters, which hold
email addresses and token hashes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from persistence.errors import THROTTLING_CODES

log = logging.getLogger(__name__)

OK = "ok"
# Where the call's start is kept in botocore's per-call context dict.
_STARTED = "user_service_started"


class DynamoDbCallObserver(Protocol):
    """Told about every DynamoDB call the client makes (implemented in server.operations)."""

    def dynamodb_call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        """A call ended: ``outcome`` is "ok", the AWS error code, or the exception's class."""

    def dynamodb_call_retried(self, operation: str, retries: int) -> None:
        """A call needed ``retries`` attempts beyond the first."""

    def dynamodb_throttled(self, operation: str) -> None:
        """One attempt of a call was refused for throttling."""


class CallHooks:
    """botocore event handlers (before-call, needs-retry, after-call, after-call-error).

    Each returns None, so botocore's own retry handler, which answers needs-retry, decides alone.
    """

    def __init__(self, observer: DynamoDbCallObserver | None = None) -> None:
        self._observer = observer

    def register(self, events: Any) -> None:
        """Registers the handlers on a client's event emitter (``client.meta.events``)."""
        if self._observer is not None:  # only the observer wants latencies
            events.register("before-call.dynamodb", self.before_call)
        events.register("needs-retry.dynamodb", self.needs_retry)
        events.register("after-call.dynamodb", self.after_call)
        events.register("after-call-error.dynamodb", self.after_call_error)

    def before_call(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.perf_counter()

    def needs_retry(
        self,
        operation: Any,
        attempts: int,
        response: tuple[Any, dict[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        """Called after every attempt, whether or not botocore then retries it."""
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
        self._finished(model.name, outcome, context)

    def after_call_error(
        self, exception: BaseException, context: dict[str, Any], event_name: str, **_: Any
    ) -> None:
        """The request could not be sent or answered (connection refused, timeout, deadline)."""
        self._finished(event_name.rpartition(".")[2], type(exception).__name__, context)

    def _finished(self, operation: str, outcome: str, context: dict[str, Any]) -> None:
        retries = int((context.get("retries") or {}).get("attempt", 1)) - 1
        if retries > 0:
            log.warning(
                "DynamoDB %s needed %d retries: %s",
                operation,
                retries,
                outcome,
                extra={"operation": operation, "retries": retries, "outcome": outcome},
            )
        observer = self._observer
        if observer is None:
            return
        started = context.get(_STARTED)
        if started is not None:
            observer.dynamodb_call_finished(operation, outcome, time.perf_counter() - started)
        if retries > 0:
            observer.dynamodb_call_retried(operation, retries)


def _error_code(parsed: dict[str, Any]) -> str | None:
    code = (parsed.get("Error") or {}).get("Code")
    return str(code) if code else None
