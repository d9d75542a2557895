"""OpenTelemetry tracing, configured by the standard OTEL_* variables (README, "Tracing").

Off unless an exporter is configured: ``OTEL_TRACES_EXPORTER=otlp``, or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``).
``OTEL_SDK_DISABLED=true`` and ``OTEL_TRACES_EXPORTER=none`` turn it off whatever else is set.
When off, nothing of the SDK is built and no interceptor or hook is installed: a call costs
what it cost before.

When on, spans go in batches (``BatchSpanProcessor``, tuned by ``OTEL_BSP_*``) to an OTLP/gRPC
exporter that reads its own variables (endpoint, headers, certificate, timeout, compression);
the sampler follows ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
always on), the resource ``OTEL_SERVICE_NAME`` (default "user-service") and
``OTEL_RESOURCE_ATTRIBUTES``. The tracer provider is the service's own, not the process-global
one: two services in one process (tests) keep their spans apart.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "user-service"
# At shutdown, how long the spans still batched may take to reach the collector.
FLUSH_SECONDS = 2.0
INSTRUMENTATION_NAME = "user-service"
# The only exporter and protocol this service ships with.
_OTLP = "otlp"
_GRPC = "grpc"

# The variables the service itself reads (the SDK and the exporter read more: README).
SDK_DISABLED = "OTEL_SDK_DISABLED"
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
SERVICE_NAME = "OTEL_SERVICE_NAME"
RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"


class TracingMisconfigured(ValueError):
    """The OTEL_* variables ask for something this service cannot do (another exporter)."""


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the variables turn tracing on; TracingMisconfigured when they ask for an exporter
    or protocol other than OTLP over gRPC."""
    env = os.environ if environ is None else environ
    if env.get(SDK_DISABLED, "").strip().lower() == "true":
        return False
    exporters = {
        name.strip().lower() for name in env.get(TRACES_EXPORTER, "").split(",") if name.strip()
    }
    if "none" in exporters:
        return False
    if exporters - {_OTLP}:
        raise TracingMisconfigured(
            f"{TRACES_EXPORTER}={env[TRACES_EXPORTER]}: only 'otlp' (or 'none') is supported"
        )
    wanted = bool(exporters) or bool(
        env.get(OTLP_ENDPOINT, "").strip() or env.get(OTLP_TRACES_ENDPOINT, "").strip()
    )
    if wanted:
        for name in (OTLP_TRACES_PROTOCOL, OTLP_PROTOCOL):
            protocol = env.get(name, "").strip().lower()
            if protocol:
                if protocol != _GRPC:
                    raise TracingMisconfigured(
                        f"{name}={protocol}: only 'grpc' is supported (OTLP over gRPC, port 4317)"
                    )
                break  # the traces-specific one wins
    return wanted


@dataclass(frozen=True)
class Tracing:
    """The service's tracer, the propagator for W3C ``traceparent``/``tracestate``, and the
    provider to flush and shut down at exit."""

    provider: TracerProvider
    tracer: Tracer
    propagator: TextMapPropagator
    # Stops the exporter at once, abandoning an export under way and its retries.
    stop_exporting: Callable[[], None] | None = None

    def shutdown(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        """Exports the spans still batched, then stops; an export that has not succeeded within
        ``flush_seconds`` (the collector is down: the exporter would retry for its whole
        timeout, 10 s by default) is abandoned, so a stop is never held up for long."""
        timer = None
        if self.stop_exporting is not None:
            timer = threading.Timer(flush_seconds, self.stop_exporting)
            timer.daemon = True
            timer.start()
        try:
            self.provider.shutdown()  # the batch processor exports what it holds, then stops
        finally:
            if timer is not None:
                timer.cancel()


def tracing_with(
    processor: SpanProcessor,
    *,
    service_name: str | None = None,
    stop_exporting: Callable[[], None] | None = None,
) -> Tracing:
    """Tracing into ``processor`` (tests: a SimpleSpanProcessor over an InMemorySpanExporter);
    the resource and sampler still follow the OTEL_* variables."""
    provider = TracerProvider(resource=_resource(service_name))
    provider.add_span_processor(processor)
    return Tracing(
        provider=provider,
        tracer=provider.get_tracer(INSTRUMENTATION_NAME),
        propagator=TraceContextTextMapPropagator(),
        stop_exporting=stop_exporting,
    )


def tracing_from_environment(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Tracing as the OTEL_* variables configure it, exporting over OTLP/gRPC; None when off.

    ``environ`` only decides whether tracing is on; the SDK and the exporter read os.environ.
    """
    if not tracing_wanted(environ):
        return None
    # Imported only when on: the exporter pulls in its gRPC and protobuf modules.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = OTLPSpanExporter()
    tracing = tracing_with(BatchSpanProcessor(exporter), stop_exporting=exporter.shutdown)
    log.info(
        "tracing on: spans exported over OTLP/gRPC to %s as service %s",
        _endpoint(os.environ),
        tracing.provider.resource.attributes.get("service.name"),
    )
    return tracing


def _resource(service_name: str | None) -> Resource:
    detected = Resource.create()  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
    if service_name is not None:
        return detected.merge(Resource({SERVICE_NAME_KEY: service_name}))
    name = str(detected.attributes.get(SERVICE_NAME_KEY, ""))
    if not name or name.startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME_KEY: DEFAULT_SERVICE_NAME}))
    return detected


def _endpoint(environ: Mapping[str, str]) -> str:
    """The endpoint as the log may show it: any ``user:password@`` left out."""
    endpoint = (
        environ.get(OTLP_TRACES_ENDPOINT, "").strip() or environ.get(OTLP_ENDPOINT, "").strip()
    )
    if not endpoint:
        return "the default (localhost:4317)"
    return re.sub(r"(?<=//)[^/@]*@", "", endpoint, count=1)
