"""Tracing is configured by the standard OTEL_* variables: off unless an exporter is set, off
whenever the SDK is disabled or the exporter is "none"; the resource names the service."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from server.operations import tracing as tracing_module
from server.operations.tracing import (
    TracingMisconfigured,
    tracing_from_environment,
    tracing_wanted,
    tracing_with,
)

ENDPOINT = "http://127.0.0.1:4317"


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "users"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": " OTLP "}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, True),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_configured(
    environ: dict[str, str], wanted: bool
) -> None:
    assert tracing_wanted(environ) is wanted


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_EXPORTER": "otlp,console"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
        },
    ],
)
def test_an_exporter_or_protocol_the_service_lacks_is_refused_by_name(
    environ: dict[str, str],
) -> None:
    with pytest.raises(TracingMisconfigured, match="only"):
        tracing_wanted(environ)


def test_off_means_nothing_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)

    assert tracing_from_environment() is None


def test_the_service_is_named_user_service_unless_the_variables_name_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=identity")
    tracing = tracing_with(SimpleSpanProcessor(InMemorySpanExporter()))
    attributes = tracing.provider.resource.attributes
    assert attributes["service.name"] == "user-service"
    assert attributes["deployment.environment"] == "staging"
    assert attributes["team"] == "identity"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "users-eu")
    renamed = tracing_with(SimpleSpanProcessor(InMemorySpanExporter()))
    assert renamed.provider.resource.attributes["service.name"] == "users-eu"


def test_the_sampler_follows_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter))

    tracing.tracer.start_span("sampled out").end()

    assert exporter.get_finished_spans() == ()


def test_shutdown_flushes_what_is_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # nothing leaves on its own
    exporter = InMemorySpanExporter()
    tracing = tracing_with(BatchSpanProcessor(exporter))
    tracing.tracer.start_span("batched").end()
    assert exporter.get_finished_spans() == ()

    tracing.shutdown()

    assert [span.name for span in exporter.get_finished_spans()] == ["batched"]


def test_the_readme_lists_every_otel_variable_the_service_reads() -> None:
    readme = (Path(__file__).resolve().parents[4] / "README.md").read_text()
    section = readme.split("## Tracing", 1)[1].split("\n## ", 1)[0]
    read = [
        value
        for name, value in vars(tracing_module).items()
        if name.isupper() and isinstance(value, str) and value.startswith("OTEL_")
    ]
    assert len(read) == 8
    assert [name for name in read if f"`{name}`" not in section] == []


def test_a_collector_that_does_not_answer_holds_the_stop_up_two_seconds_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from tests.conftest import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    tracing = tracing_from_environment()
    assert tracing is not None
    tracing.tracer.start_span("never delivered").end()

    started = time.monotonic()
    tracing.shutdown()

    assert time.monotonic() - started < 3.0  # the exporter alone would retry for 10 s


def test_the_logged_endpoint_leaves_out_credentials(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://ops:s3cret@collector.example:4317")
    caplog.set_level("INFO", logger=tracing_module.__name__)

    tracing = tracing_from_environment(dict(os.environ))
    assert tracing is not None
    tracing.provider.shutdown()

    assert "https://collector.example:4317" in caplog.text
    assert "s3cret" not in caplog.text and "ops" not in caplog.text
