"""Which caller metadata becomes a call span's parent: a well-formed W3C traceparent only; a
malformed or outsized one starts a new trace without a word (the SDK would log a warning per
call, a flood any caller could start)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.interceptors.tracing import _SpanOf

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


@pytest.fixture
def span_of() -> _SpanOf:
    tracer = TracerProvider().get_tracer("test")
    return _SpanOf(tracer, TraceContextTextMapPropagator(), "/biome.user.v1.UserService/GetUser")


def parent_span(span_of: _SpanOf, *metadata: tuple[str, str]) -> trace.SpanContext:
    return trace.get_current_span(span_of.parent_of(metadata)).get_span_context()


def test_a_valid_traceparent_is_the_parent_with_its_tracestate(span_of: _SpanOf) -> None:
    parent = parent_span(span_of, ("traceparent", VALID), ("tracestate", "vendor=x"))
    assert format(parent.trace_id, "032x") == TRACE_ID
    assert format(parent.span_id, "016x") == SPAN_ID
    assert parent.trace_state.get("vendor") == "x"


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}",
        VALID + "-" + "x" * 300,
        " " + VALID,
    ],
    ids=["garbage", "upper_case", "short", "outsized", "padded"],
)
def test_a_malformed_or_outsized_traceparent_starts_a_new_trace_quietly(
    span_of: _SpanOf, traceparent: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert not parent_span(span_of, ("traceparent", traceparent)).is_valid
    assert caplog.records == []


def test_an_outsized_tracestate_is_dropped_and_the_parent_kept(
    span_of: _SpanOf, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    members = ",".join(f"v{n}=" + "x" * 20 for n in range(40))
    parent = parent_span(span_of, ("traceparent", VALID), ("tracestate", members))
    assert parent.is_valid and len(parent.trace_state) == 0
    assert caplog.records == []
