"""Prometheus metrics of the API, served at `/metrics` in the text exposition format.

Requests are counted by route template (`/projects/{project_id}`), never by raw path: a client
asking for a million made-up paths adds one series (`unmatched`), not a million. The entity
cache's lookups are counted by result, and the database pool's use is read after each request.

With several worker processes (`bifrost serve --workers N`) each process writes its values to
files under PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set by `bifrost
serve`), and any worker's `/metrics` answers for all of them.
"""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import Scope

from bifrost_core.db.database import Database

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "bifrost_api_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "bifrost_api_request_duration_seconds",
    "Time from a request's arrival to its response's end, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE_LOOKUPS = Counter(
    "bifrost_api_cache_lookups", "Entity cache lookups by result (hit or miss)", ["result"]
)
# Each process's own pool: summed over the live worker processes.
POOL_IN_USE = Gauge(
    "bifrost_db_pool_connections_in_use", "Database connections checked out", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "bifrost_db_pool_connections_open",
    "Database connections open (idle and in use)",
    multiprocess_mode="livesum",
)


def route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


def observe_request(scope: Scope, status: int, seconds: float, database: Database) -> None:
    route = route_of(scope)
    method = scope["method"]
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)
    pool = database.engine.pool
    if hasattr(pool, "checkedout"):  # a QueuePool (an in-memory SQLite database has another kind)
        POOL_IN_USE.set(pool.checkedout())
        POOL_SIZE.set(pool.checkedin() + pool.checkedout())


def cache_lookup(hit: bool) -> None:
    CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Every metric of this API (all its worker processes), for Prometheus to scrape."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
