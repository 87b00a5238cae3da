"""Prometheus metrics of the API, served at `/metrics` in the text exposition format.

Requests are counted by route template (`/projects/{project_id}`), never by raw path: a client
asking for a million made-up paths adds one series (`unmatched`), not a million. The entity
cache's lookups are counted by result, and the database pool's use is read after each request.

With several worker processes (`bifrost serve --workers N`) each process writes its values to
files under PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set by `bifrost
serve`), and any worker's `/metrics` answers for all of them.

What is stored (bytes and blobs per tier, files and bytes ingested per project, free space of the
studio's local tier roots) and the render farm's queue (jobs and chunks by state) are read from
the database when scraped, at most every STORE_SECONDS; every API process reports the same
figures, so rules over several processes take their max.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Request
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
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import Scope

from api.backup_metrics import backup_metrics
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.ingest import upkeep
from bifrost_core.render.repository import farm_counts
from bifrost_core.replication import service as replication
from bifrost_core.storage.roots import normalise_root

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
STORE_SECONDS = 15.0
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


class StoreCollector:
    """The database's figures, read at most every STORE_SECONDS (a scrape every second must not
    run these sums every second)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self._lock = threading.Lock()
        self._metrics: list[Metric] = []
        self._read_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= STORE_SECONDS:
                self._metrics = self._read()
                self._read_at = time.monotonic()
            return iter(self._metrics)

    def _read(self) -> list[Metric]:
        tiers = upkeep.tier_totals(self.database)
        ingested = upkeep.ingested_totals(self.database)
        disks = self._local_disks()
        with UnitOfWork(self.database) as uow:
            job_states, chunk_states = farm_counts(uow.session)
        return [
            _gauge("bifrost_storage_bytes", "Bytes stored per tier (each blob once)", "tier",
                   ((usage.tier, usage.bytes) for usage in tiers)),
            _gauge("bifrost_storage_blobs", "Blobs stored per tier", "tier",
                   ((usage.tier, usage.blobs) for usage in tiers)),
            _gauge("bifrost_ingested_files", "Files ingests have recorded, per project", "project",
                   ((project, files) for project, files, _ in ingested)),
            _gauge("bifrost_ingested_bytes", "Bytes of the files ingests have recorded, per project",
                   "project", ((project, size) for project, _, size in ingested)),
            _gauge("bifrost_storage_root_size_bytes", "Size of the file system of a local tier root", "tier",
                   ((tier, size) for tier, size, _ in disks)),
            _gauge("bifrost_storage_root_free_bytes", "Free bytes on the file system of a local tier root",
                   "tier", ((tier, free) for tier, _, free in disks)),
            _gauge("bifrost_render_jobs", "Render jobs by state", "state", job_states.items()),
            _gauge("bifrost_render_chunks", "Render chunks by state (pending: the farm's queue)", "state",
                   chunk_states.items()),
            *replication_gauges(self.database, self.settings),
            *backup_metrics(self.database, self.settings),
        ]  # fmt: skip

    def _local_disks(self) -> list[tuple[str, int, int]]:
        """(tier, size, free bytes) of the file systems of the studio's tier roots that are local folders."""
        disks = []
        for tier, root in self.settings.tier_roots.items():
            folder = normalise_root(root)  # a local folder loses any file:// scheme
            if "://" in folder:
                continue
            try:
                disk = shutil.disk_usage(folder)
            except OSError:
                continue  # not there (yet): readiness reports that
            disks.append((tier, disk.total, disk.free))
        return disks


def replication_gauges(database: Database, settings: Settings) -> list[Metric]:
    """The lag of each replica (bifrost_core/replication): blobs and bytes not yet copied and
    verified there, and the age of the oldest of them (0 when none is behind)."""
    try:
        replicas = replication.configured(database, settings)
    except ConfigError:
        replicas = []  # a replica that clashes with a project's root: `bifrost storage replicas` says which
    lags = replication.lag(database, replicas)
    families = [
        GaugeMetricFamily(name, documentation, labels=["tier", "replica"])
        for name, documentation in (
            ("bifrost_replication_lag_blobs", "Blobs of a tier not yet copied and verified on a replica"),
            ("bifrost_replication_lag_bytes", "Bytes of a tier not yet copied and verified on a replica"),
            ("bifrost_replication_lag_oldest_seconds", "Age of the oldest blob not yet on a replica"),
        )
    ]
    for lag in lags:
        for family, value in zip(families, (lag.blobs, lag.bytes, lag.oldest_seconds or 0.0), strict=True):
            family.add_metric([lag.tier, lag.replica], value)
    return families


def _gauge(name: str, documentation: str, label: str, values: Iterable[tuple[str, float]]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values:
        family.add_metric([key], value)
    return family


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Every metric of this API (all its worker processes) and the database's figures, for
    Prometheus to scrape."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    store = generate_latest(request.app.state.metrics_store)  # type: ignore[arg-type]
    return Response(generate_latest(registry) + store, media_type=CONTENT_TYPE_LATEST)
