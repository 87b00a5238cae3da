"""The request's server span (api.middleware.ServerSpan): named by route template, a child of
the caller's `traceparent`, the HTTP conventions' attributes, an error for a 5xx or a raise, none
for the probes. A tracer provider of the test's own with an in-memory exporter: the process's
global provider stays untouched."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api.middleware import ServerSpan

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def traced() -> tuple[TestClient, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/shots/{shot_id}")
    def shot(shot_id: int) -> dict:
        return {"id": shot_id}

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("boom")

    @app.get("/healthz")
    def healthz() -> dict:
        return {}

    app.add_middleware(ServerSpan, excluded_paths=("/healthz",), tracer_provider=provider)
    return TestClient(app, raise_server_exceptions=False), exporter


def test_a_request_is_one_server_span_named_by_its_route_and_child_of_the_callers_trace(traced):
    client, exporter = traced
    answer = client.get("/shots/7", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert answer.status_code == 200
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("GET /shots/{shot_id}", SpanKind.SERVER)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/shots/7",
        "http.route": "/shots/{shot_id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code == StatusCode.UNSET


def test_without_a_caller_trace_a_request_starts_one(traced):
    client, exporter = traced
    client.get("/shots/7")
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_an_unmatched_path_keeps_the_method_alone_and_a_raise_is_an_error(traced):
    client, exporter = traced
    assert client.get("/nowhere").status_code == 404
    assert client.get("/boom").status_code == 500
    unmatched, raised = exporter.get_finished_spans()
    assert unmatched.name == "GET"
    assert "http.route" not in unmatched.attributes
    assert unmatched.attributes["http.response.status_code"] == 404
    assert raised.name == "GET /boom"
    assert raised.attributes["http.response.status_code"] == 500
    assert raised.attributes["error.type"] == "RuntimeError"
    assert raised.status.status_code == StatusCode.ERROR


def test_the_probes_make_no_span(traced):
    client, exporter = traced
    assert client.get("/healthz").status_code == 200
    assert exporter.get_finished_spans() == ()
