"""Plain ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

One layer does four things: gives each request an id (echoed in `X-Request-ID`),
refuses bodies over the size limit with 413, writes one JSON access-log line, and hands
each answered request to `observe` (the metrics, api/metrics.py).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("bifrost.api.access")

_TOO_LARGE = json.dumps(
    {"error": {"code": "too_large", "message": "request body too large", "details": {}}}
).encode()


Observer = Callable[[Scope, int, float], None]


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, observe: Observer | None = None) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id  # request.state.request_id
        status = 500
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_too_large(send, request_id)
            self._done(scope, 413, started, request_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    # Chunked bodies have no Content-Length: the limit holds while reading too.
                    raise HTTPException(413, "request body too large")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._done(scope, status, started, request_id)

    def _done(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        seconds = time.perf_counter() - started
        if self.observe is not None:
            self.observe(scope, status, seconds)
        if not access_log.isEnabledFor(logging.INFO):
            return
        state = scope.get("state") or {}
        access_log.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "user_id": state.get("user_id"),
                    "project_id": (scope.get("path_params") or {}).get("project_id"),
                    "flow_run_id": state.get("flow_run_id"),
                    "client": scope["client"][0] if scope.get("client") else None,
                }
            )
        )


class ServerSpan:
    """One server span per request (OpenTelemetry's HTTP conventions), named by its route template
    (`GET /shots/{shot_id}`) once the router has matched it; a path no route matched keeps the
    method alone. The caller's trace context (`traceparent`, through the configured propagators)
    is its parent. It ends with the response's last byte.

    Ours, not opentelemetry-instrumentation-asgi's: that one set some twenty attributes in two
    conventions and recorded metrics no one reads (bifrost_core/telemetry.py has the figures)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        excluded_paths: Collection[str] = (),
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.app = app
        self.excluded = frozenset(excluded_paths)
        self.tracer = trace.get_tracer("bifrost.api", tracer_provider=tracer_provider)
        # The headers the configured propagators read (OTEL_PROPAGATORS; traceparent by default).
        self.propagated = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = scope["headers"]
        # Most requests carry no trace context: then the propagators have nothing to read.
        parent = (
            propagate.extract(headers, getter=_HEADERS)
            if any(name in self.propagated for name, _ in headers)
            else otel_context.Context()
        )
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.scheme": scope["scheme"],
                "url.path": scope["path"],
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500  # what the client gets when the application raises

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as error:
            span.set_attribute("error.type", type(error).__qualname__)
            raise
        finally:
            otel_context.detach(token)
            route = getattr(scope.get("route"), "path", None)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
            span.end()


class _HeadersGetter(Getter[list[tuple[bytes, bytes]]]):
    """Reads the propagators' headers (traceparent, tracestate, baggage) from the ASGI list."""

    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for header, value in carrier if header == name]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [header.decode("latin-1") for header, _ in carrier]


_HEADERS = _HeadersGetter()


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            # Keep a caller's id for tracing across services, if it is a sane one.
            text = value.decode("latin-1")[:64]
            if text.isprintable() and text:
                return text
    return uuid.uuid4().hex


async def _send_too_large(send: Send, request_id: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TOO_LARGE)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TOO_LARGE})


class JsonLogFormatter(logging.Formatter):
    """Access lines are JSON already; other records become JSON with level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == access_log.name:
            return message
        entry = {"level": record.levelname, "logger": record.name, "message": message}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)
