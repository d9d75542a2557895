"""Prometheus metrics of one service instance, on a registry of its own, served over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.process_collector import ProcessCollector

from domain.events import RecordedEvent, SessionEndReason, SessionRevoked, SessionsRevoked
from server.rpc_access import method_path

# 1 ms .. 10 s: a key read takes milliseconds, a sign-in (argon2id) tens of them, and a call
# spending seconds is waiting on DynamoDB's retries or timeouts.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

AUTHENTICATE = method_path("Authenticate")
# How an Authenticate call ended, from its status code (any other code is "error").
LOGIN_OUTCOMES = {
    grpc.StatusCode.OK: "success",
    grpc.StatusCode.UNAUTHENTICATED: "failed",  # wrong password or unknown address
    grpc.StatusCode.INVALID_ARGUMENT: "failed",  # malformed address, empty or over-long password
    grpc.StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    grpc.StatusCode.PERMISSION_DENIED: "disabled",
}
LOGIN_ERROR = "error"


class Metrics:
    """Every metric of the service, registered on ``registry`` (a new one by default).

    Also the persistence layer's DynamoDbCallObserver.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        ProcessCollector(registry=self.registry)
        registry = self.registry
        self.rpcs = Counter(
            "user_service_rpcs",
            "RPCs handled, by full method name and gRPC status code",
            ["method", "code"],
            registry=registry,
        )
        self.rpc_duration = Histogram(
            "user_service_rpc_duration_seconds",
            "Time from the call reaching the service to its status, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rpcs_in_flight = Gauge(
            "user_service_rpcs_in_flight",
            "RPCs being handled, by method",
            ["method"],
            registry=registry,
        )
        self.dynamodb_calls = Counter(
            "user_service_dynamodb_calls",
            'DynamoDB calls by operation and outcome ("ok", the AWS error code, or the '
            "exception's class for a call that got no answer), botocore's retries included",
            ["operation", "outcome"],
            registry=registry,
        )
        self.dynamodb_call_duration = Histogram(
            "user_service_dynamodb_call_duration_seconds",
            "Time of a DynamoDB call, its retries included, by operation",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.dynamodb_retries = Counter(
            "user_service_dynamodb_retries",
            "Attempts of DynamoDB calls beyond their first, by operation",
            ["operation"],
            registry=registry,
        )
        self.dynamodb_throttles = Counter(
            "user_service_dynamodb_throttles",
            "Attempts of DynamoDB calls refused for throttling, by operation",
            ["operation"],
            registry=registry,
        )
        self.logins = Counter(
            "user_service_logins",
            "Authenticate calls by outcome: success, failed, overloaded, disabled, error",
            ["outcome"],
            registry=registry,
        )
        self.sessions_revoked = Counter(
            "user_service_sessions_revoked",
            "Sessions ended, by reason, counted when the change is committed",
            ["reason"],
            registry=registry,
        )
        for outcome in {*LOGIN_OUTCOMES.values(), LOGIN_ERROR}:
            self.logins.labels(outcome)
        for reason in SessionEndReason:
            self.sessions_revoked.labels(reason.value)
        self._dynamodb_calls: dict[tuple[str, str], Any] = {}

    def for_method(self, method: str) -> MethodMetrics:
        """The metrics of one RPC method, looked up once (the interceptor keeps them)."""
        return MethodMetrics(self, method)

    def dynamodb_call_finished(self, operation: str, outcome: str, seconds: float) -> None:
        key = (operation, outcome)
        calls = self._dynamodb_calls.get(key)
        if calls is None:
            calls = self._dynamodb_calls[key] = self.dynamodb_calls.labels(operation, outcome)
        calls.inc()
        self.dynamodb_call_duration.labels(operation).observe(seconds)

    def dynamodb_call_retried(self, operation: str, retries: int) -> None:
        self.dynamodb_retries.labels(operation).inc(retries)

    def dynamodb_throttled(self, operation: str) -> None:
        self.dynamodb_throttles.labels(operation).inc()

    def record_committed_events(self, events: Iterable[object]) -> None:
        """Counts the committed events metrics follow: the sessions SessionRevoked and
        SessionsRevoked ended, by reason."""
        for event in events:
            if isinstance(event, RecordedEvent):
                event = event.event
            if isinstance(event, SessionRevoked):
                self.sessions_revoked.labels(str(event.reason)).inc()
            elif isinstance(event, SessionsRevoked) and event.sessions_ended:
                self.sessions_revoked.labels(str(event.reason)).inc(event.sessions_ended)


class MethodMetrics:
    """One method's children of the RPC metrics, so that a call looks no label up but its code."""

    __slots__ = ("_by_code", "_latency", "_logins", "_method", "_rpcs", "in_flight")

    def __init__(self, metrics: Metrics, method: str) -> None:
        self._method = method
        self._rpcs = metrics.rpcs
        self._by_code: dict[grpc.StatusCode, Any] = {}
        self._latency = metrics.rpc_duration.labels(method)
        self.in_flight = metrics.rpcs_in_flight.labels(method)
        self._logins = (
            {code: metrics.logins.labels(outcome) for code, outcome in LOGIN_OUTCOMES.items()}
            | {None: metrics.logins.labels(LOGIN_ERROR)}
            if method == AUTHENTICATE
            else None
        )

    def finished(self, code: grpc.StatusCode, seconds: float) -> None:
        """A call that was counted in flight ended with ``code`` after ``seconds``."""
        self.in_flight.dec()
        handled = self._by_code.get(code)
        if handled is None:
            handled = self._by_code[code] = self._rpcs.labels(self._method, code.name)
        handled.inc()
        self._latency.observe(seconds)
        if self._logins is not None:
            (self._logins.get(code) or self._logins[None]).inc()


@dataclass(frozen=True)
class MetricsEndpoint:
    """The HTTP server answering Prometheus' scrapes, in a thread of its own."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self) -> None:
        """Stops serving and closes the socket (blocking; call it from a worker thread)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def start_metrics_endpoint(metrics: Metrics, host: str, port: int) -> MetricsEndpoint:
    """Serves ``metrics`` on http://host:port/ (any path; port 0 picks a free one)."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    return MetricsEndpoint(server, thread)
