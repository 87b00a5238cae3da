"""Property-based: schemathesis generates requests from the app's own OpenAPI schema.

Whatever it sends (with a valid admin token), the app must not answer 5xx, and every
answer must match the documented status codes, content types and schemas.
"""

from __future__ import annotations

import pytest
import schemathesis
from api_world import World
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database


def _schema_only_app():
    # The schema is the same for every app; this one never touches its (unopened) database.
    app = create_app(load_settings(), database=Database("sqlite://"), cache=LocalCache())
    with TestClient(app):  # run start-up and shut-down, so nothing stays subscribed
        pass
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _schema_only_app())


@pytest.fixture
def app(bifrost_env, database, world: World, prefect_api: str, monkeypatch):
    # A real Prefect server, so the flow routes answer for real (not 503) too.
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    app = create_app(load_settings(), database=database, cache=LocalCache())
    with TestClient(app):
        yield app


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, app, world: World) -> None:
    case.call_and_validate(
        app=app,
        headers=world.headers("admin"),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
