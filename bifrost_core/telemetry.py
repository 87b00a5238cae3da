"""Tracing with OpenTelemetry, configured by the standard OTEL_* variables and off by default.

On when OTEL_TRACES_EXPORTER names an exporter (`otlp`: OTLP over HTTP, whose endpoint,
headers and timeouts the exporter reads from OTEL_EXPORTER_OTLP_*; `console`: spans as JSON on
stdout) or when an OTLP endpoint is set; OTEL_SDK_DISABLED=true turns it off again. The service
name is OTEL_SERVICE_NAME, else the process's role (bifrost-api, bifrost-flows).

Spans: the API's requests (api/middleware.py `ServerSpan`: one span each, named by its route
template), every database statement (`trace_statements`: one span each, on the engines made
after this is configured), and each flow and task run (Prefect makes those spans itself
once a tracer provider is set; a run started from an API request carries the request's trace in
its `__OTEL_TRACEPARENT` label, so its spans join the request's trace).

Both kinds of span are ours rather than OpenTelemetry's instrumentation packages': with theirs,
tracing added 2.3 ms of server CPU to a get, with ours 0.9 ms (bench/api.py; they set some
twenty attributes in two conventions, recorded metrics nobody reads, and made a span per
connection checkout).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from sqlalchemy.engine import Engine

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
    """A client span for each statement run by the SQLAlchemy engines made from now on, child of
    the span current when it runs (the request's, the task's).

    bifrost_core/db/database.py calls `sqlalchemy.create_engine`, looked up when called, which
    this wraps; each engine's dialect runs its statements (`do_execute` and its two siblings,
    the methods a dialect overrides to run them) inside a span. Not engine events: one listener
    on an engine makes SQLAlchemy join the event dispatch of every connection to the engine's,
    which cost about as much as the span itself."""
    import sqlalchemy
    from opentelemetry import trace

    tracer = trace.get_tracer("bifrost.db")
    create_engine = sqlalchemy.create_engine

    def create_traced_engine(*args: Any, **kwargs: Any) -> Engine:
        engine = create_engine(*args, **kwargs)
        dialect = engine.dialect
        attributes = _attributes_of(engine)
        for name in ("do_execute", "do_executemany", "do_execute_no_params"):
            setattr(dialect, name, _traced(getattr(dialect, name), tracer, attributes))
        return engine

    sqlalchemy.create_engine = create_traced_engine


def _traced(execute: Callable[..., None], tracer: Tracer, attributes: dict[str, Any]) -> Callable[..., None]:
    from opentelemetry.trace import SpanKind, StatusCode

    namespace = attributes["db.namespace"]

    def traced_execute(cursor: Any, statement: str, *rest: Any) -> None:
        operation = statement.split(None, 1)[0] if statement else ""
        span = tracer.start_span(
            f"{operation} {namespace}",
            kind=SpanKind.CLIENT,
            attributes={**attributes, "db.operation.name": operation, "db.query.text": statement},
        )
        try:
            execute(cursor, statement, *rest)
        except BaseException as error:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(StatusCode.ERROR, str(error)[:200])
            raise
        finally:
            span.end()

    return traced_execute


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
