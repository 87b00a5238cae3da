"""Tracing with OpenTelemetry, configured by the standard OTEL_* variables and off by default.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`: OTLP over HTTP, whose endpoint,
headers and timeouts the exporter reads from OTEL_EXPORTER_OTLP_*; `console`: spans as JSON on
stdout) or when an OTLP endpoint is set; OTEL_SDK_DISABLED=true turns it off again. The service
name is OTEL_SERVICE_NAME, else the process's role (bifrost-api, bifrost-flows).

Spans: the API's requests (api/middleware.py `ServerSpan`: one span each, named by its route
template), every database statement (`trace_statements`: one span each, listening to every
SQLAlchemy engine of the process), and each flow and task run (Prefect makes those spans itself
once a tracer provider is set; a run started from an API request carries the request's trace in
its `__OTEL_TRACEPARENT` label, so its spans join the request's trace).

Both kinds of span are ours rather than OpenTelemetry's instrumentation packages': with theirs,
tracing added 2.3 ms of server CPU to a get, with ours 0.9 ms (bench/api.py; they set some
twenty attributes in two conventions, recorded metrics nobody reads, and made a span per
connection checkout).
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.engine import Connection, Engine

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
    trace_statements()
    _configured = True
    return True


def trace_statements() -> None:
    """A client span for each statement any SQLAlchemy engine of this process runs, child of
    the span current when it runs (the request's, the task's)."""
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, StatusCode
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    tracer = trace.get_tracer("bifrost.db")
    engine_attributes: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()

    def before(conn: Connection, _cursor, statement: str, _parameters, context, _executemany) -> None:
        engine = conn.engine
        attributes = engine_attributes.get(engine)
        if attributes is None:
            attributes = engine_attributes.setdefault(engine, _attributes_of(engine))
        operation = statement.split(None, 1)[0] if statement else ""
        context._bifrost_span = tracer.start_span(
            f"{operation} {attributes['db.namespace']}",
            kind=SpanKind.CLIENT,
            attributes={**attributes, "db.operation.name": operation, "db.query.text": statement},
        )

    def after(_conn, _cursor, _statement, _parameters, context, _executemany) -> None:
        span = getattr(context, "_bifrost_span", None)
        if span is not None:
            span.end()

    def failed(exception_context) -> None:
        span = getattr(exception_context.execution_context, "_bifrost_span", None)
        if span is not None:
            error = exception_context.original_exception
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, str(error)[:200])
            span.end()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    event.listen(Engine, "handle_error", failed)


def _attributes_of(engine: Engine) -> dict[str, Any]:
    """OpenTelemetry's database conventions (no password, no parameters)."""
    url = engine.url
    attributes: dict[str, Any] = {
        "db.system.name": engine.dialect.name,
        "db.namespace": url.database or "",
    }
    if url.host:
        attributes["server.address"] = url.host
    if url.port:
        attributes["server.port"] = url.port
    return attributes


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from bifrost_core.otlp import FastOTLPSpanExporter

    return FastOTLPSpanExporter()
