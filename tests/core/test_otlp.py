"""bifrost_core.otlp writes what OpenTelemetry's encoder would: the official protobuf classes read
its bytes back as the very request the exporter's own encoder builds."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from bifrost_core.otlp import FastOTLPSpanExporter, encode


def finished_spans() -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bifrost-test", "pid": 7}, "https://s/1")
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    api = provider.get_tracer("bifrost.api", "1.0", schema_url="https://opentelemetry.io/schemas/1.44.0")
    db = provider.get_tracer("bifrost.db")
    remote = SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    request = api.start_span(
        "GET /shots/{shot_id}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.response.status_code": 200, "url.path": "/shots/7"},
    )
    with trace.use_span(request):
        statement = db.start_span(
            "SELECT bench",
            kind=SpanKind.CLIENT,
            attributes={
                "db.query.text": "SELECT shots.id FROM shots WHERE shots.id = %(id)s — ünïcode",
                "server.port": 5432,
                "negative": -3,
                "ratio": 0.25,
                "flag": False,
                "names": ("a", "b"),
                "numbers": [1, 2, 3],
            },
            links=[Link(remote, {"why": "retry"})],
        )
        statement.add_event("exception", {"exception.type": "OperationalError"})
        statement.set_status(Status(StatusCode.ERROR, "server closed the connection"))
        statement.end()
        api.start_span("internal").end()
    request.end()
    return list(exporter.get_finished_spans())


def test_the_bytes_read_back_as_the_official_encoders_request():
    spans = finished_spans()
    assert ExportTraceServiceRequest.FromString(encode(spans)) == encode_spans(spans)


def test_no_spans_is_an_empty_request():
    assert encode([]) == b""


def test_the_exporter_posts_them_to_the_otlp_endpoint():
    """It relies on the exporter's HTTP client (a private part of OTLPSpanExporter): this is the
    test that a new version of it breaks."""
    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.headers["Content-Type"] == "application/x-protobuf"
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        exporter = FastOTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1/traces")
        spans = finished_spans()
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(spans) == SpanExportResult.FAILURE
    finally:
        server.shutdown()
        server.server_close()
    (body,) = received
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)
