"""The FastAPI application: `create_app(settings)` builds it, `factory()` serves it.

`uvicorn --factory api.app:factory` (what `bifrost serve` runs in each worker) reads
the settings from the environment. Routes are sync functions on purpose: services
use the synchronous SQLAlchemy session, and FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from api import docs, errors, metrics, run_metrics, ui
from api.auth import Authenticator
from api.deps import ApiState
from api.middleware import JsonLogFormatter, RequestMiddleware, ServerSpan
from api.params import refuse_unknown_query
from api.routers import (
    archive,
    assets,
    bulk,
    events,
    flows,
    ops,
    people,
    production,
    render,
    replication,
    reviews,
    tasks,
    versions,
)
from bifrost_core.bootstrap import open_database
from bifrost_core.cache.backends import Cache, open_cache
from bifrost_core.cache.entities import Invalidator, invalidate_on_commit
from bifrost_core.config import Settings, get_settings
from bifrost_core.db.database import Database
from bifrost_core.db.replicas import Replicas
from bifrost_core.telemetry import configure_tracing
from flows.registry import FLOWS

# Set by `bifrost serve` when it runs several workers: an in-process cache would then
# serve one worker's stale entities after another worker's change.
WORKERS_ENV = "BIFROST_API_WORKERS"

# Recent FastAPI (0.150 here) makes spans of its own once a tracer provider is set (a server span, and one
# for the dependencies, the endpoint and the serialization of each request): api.middleware's
# ServerSpan is the request's one span; theirs would double it and cost as much again.
_NO_NATIVE_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, cache: Cache | None = None
) -> FastAPI:
    settings = settings or get_settings()
    # Before any engine is made, so that the database's statements are traced too.
    tracing = configure_tracing("bifrost-api")
    owns_database = database is None
    database = database or open_database(settings)
    cache = cache or open_cache(settings.redis_url)
    workers = int(os.environ.get(WORKERS_ENV, "1") or 1)
    replicas = None
    if settings.database_replica_urls:
        replicas = Replicas(
            database,
            settings.database_replica_urls,
            max_lag_seconds=settings.database_replica_max_lag_seconds,
            pool_size=settings.db_pool_size,
        )
    state = ApiState(
        settings=settings,
        database=database,
        cache=cache,
        authenticator=Authenticator(database, cache, failure_limit=settings.api_auth_failures),
        entity_cache=cache.kind == "redis" or workers <= 1,
        replicas=replicas,
    )
    if cache.kind == "redis" and settings.redis_url:
        # Shared with the rest of the process (see bifrost_core.bootstrap.open_database).
        invalidate_on_commit(settings.redis_url)
        invalidator = None
    else:
        invalidator = Invalidator(cache).install()
    run_collector = run_metrics.RunCollector(FLOWS) if settings.metrics_enabled else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_collector is not None:
            run_collector.start()
        yield
        if run_collector is not None:
            run_collector.stop()
        if invalidator is not None:
            invalidator.uninstall()
        cache.close()
        if replicas is not None:
            replicas.dispose()
        if owns_database:
            database.dispose()

    app = FastAPI(
        title="Bifrost",
        version="1",
        summary="Production data, flows and reviews of the Bifrost pipeline",
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
        dependencies=[Depends(refuse_unknown_query)],
        docs_url=None,  # api.docs serves them, without a CDN
        redoc_url=None,
        **_NO_NATIVE_TELEMETRY,
    )
    app.state.bifrost = state
    errors.install(app)
    docs.install(app)
    ui.install(app)
    app.include_router(ops.router)
    if run_collector is not None:
        app.state.metrics_collectors = [
            metrics.StoreCollector(database, settings),
            *([metrics.ReplicaCollector(replicas)] if replicas is not None else []),
            run_collector,
        ]
        app.include_router(metrics.router)
    routers = (
        production,
        assets,
        tasks,
        versions,
        reviews,
        people,
        events,
        bulk,
        flows,
        render,
        archive,
        replication,
    )
    for module in routers:
        app.include_router(module.router)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)

    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.api_max_body_bytes,
        observe=(
            (lambda scope, status, seconds: metrics.observe_request(scope, status, seconds, database))
            if settings.metrics_enabled
            else None
        ),
    )
    if tracing:
        app.add_middleware(ServerSpan, excluded_paths=("/healthz", "/readyz", "/metrics"))
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            flows.document_flows(generated())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger("bifrost")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def factory() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
