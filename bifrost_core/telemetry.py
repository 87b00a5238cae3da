"""Tracing with OpenTelemetry, configured by the standard OTEL_* variables and off by default.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`: OTLP over HTTP, whose endpoint,
headers and timeouts the exporter reads from OTEL_EXPORTER_OTLP_*; `console`: spans as JSON on
stdout) or when an OTLP endpoint is set; OTEL_SDK_DISABLED=true turns it off again. The service
name is OTEL_SERVICE_NAME, else the process's role (bifrost-api, bifrost-flows).

Spans: the API's requests (api/app.py: one span each, named by its route template), every
database statement (engines made after this is configured: bifrost_core/db/database.py calls
`sqlalchemy.create_engine`, which it wraps), and each flow and task run (Prefect makes those
spans itself once a tracer provider is set; a run started from an API request carries the
request's trace in its `__OTEL_TRACEPARENT` label, so its spans join the request's trace).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_configured = False
EXPORTERS = ("otlp", "console", "none")


def tracing_enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporters = [name.strip().lower() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    if unknown := [name for name in exporters if name and name not in EXPORTERS]:
        from bifrost_core.errors import ConfigError

        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: {unknown[0]!r} is not an exporter Bifrost has (otlp, console, none)"
        )
    if any(exporters):
        return exporters != ["none"]
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> bool:
    """Install the process's tracer provider (once) when tracing is on; whether it is."""
    global _configured
    if _configured:
        return True
    if exporter is None and not tracing_enabled():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", service)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
            if name.strip().lower() != "none":
                provider.add_span_processor(BatchSpanProcessor(_exporter(name.strip().lower())))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # Its declared range stops below SQLAlchemy 2.1; the engine events it listens to are the
    # same in 2.1, and the tests check that statements are traced.
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    _configured = True
    return True


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
