"""The FastAPI application: `create_app(settings)` builds it, `factory()` serves it.

`uvicorn --factory api.app:factory` (what `bifrost serve` runs in each worker) reads
the settings from the environment. Routes are sync functions on purpose: services
use the synchronous SQLAlchemy session, and FastAPI runs them in its thread pool.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware

from api import docs, errors, metrics, ui
from api.auth import Authenticator
from api.deps import ApiState
from api.middleware import JsonLogFormatter, RequestMiddleware
from api.params import refuse_unknown_query
from api.routers import (
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

# Set by `bifrost serve` when it runs several workers: an in-process cache would then
# serve one worker's stale entities after another worker's change.
WORKERS_ENV = "BIFROST_API_WORKERS"


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

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
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
    )
    app.state.bifrost = state
    app.state.metrics_store = metrics.StoreCollector(database, settings)
    errors.install(app)
    docs.install(app)
    ui.install(app)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    for module in (production, assets, tasks, versions, reviews, people, events, bulk, flows, render):
        app.include_router(module.router)
    app.include_router(replication.router)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=1)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.api_max_body_bytes,
        observe=lambda scope, status, seconds: metrics.observe_request(scope, status, seconds, database),
    )
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            flows.document_flows(generated())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if tracing:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
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
