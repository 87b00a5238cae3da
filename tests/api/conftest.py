"""API fixtures: a production in two projects, users of every role with tokens, an app.

The app runs on the parametrised `database` fixture (SQLite and PostgreSQL) with an
in-process cache unless a test asks for Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bifrost_core.cache.backends import Cache, LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from deployments.local_server import ServerDidNotStart, local_prefect_server
from tests.support.services import REDIS_URL, free_port, service_missing
from tests.support.world import World, build_world


@pytest.fixture
def world(database: Database) -> World:
    return build_world(database)


@pytest.fixture
def make_client(bifrost_env: Path, database: Database) -> Iterator:
    """Build a TestClient for the app on the test database; closed at the end of the test."""
    clients: list[TestClient] = []

    def make(cache: Cache | None = None, **settings: object) -> TestClient:
        app = create_app(load_settings(**settings), database=database, cache=cache or LocalCache())
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def pg_database_url(make_pg_database) -> str:
    """A fresh, migrated PostgreSQL database of its own (for a server in another process)."""
    from bifrost_core.db import migrate

    url = make_pg_database()
    database = Database(url)
    migrate.upgrade(database)
    database.dispose()
    return url


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """Start `bifrost serve` (real uvicorn) in a subprocess; stopped at the end of the test."""
    processes: list[subprocess.Popen] = []

    def start(env: dict[str, str], workers: int = 1) -> str:
        port = free_port()
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BIFROST_") or k.startswith("BIFROST_TEST")
        }
        log = (tmp_path / f"serve-{port}.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli.serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env={**clean, "BIFROST_HOME": str(tmp_path / "home"), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(tmp_path / f'serve-{port}.log').read_text()}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The tests' Redis database (BIFROST_TEST_REDIS), emptied before and after: entity ids
    repeat between test databases."""
    import redis

    url = REDIS_URL
    connection = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        connection.flushdb()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", str(exc))
    yield url
    connection.flushdb()
    connection.close()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on a free port with its own home, the Bifrost deployments
    registered on it (as `bifrost deploy` does); yields its API URL."""
    home = tmp_path_factory.mktemp("prefect-api")
    try:
        with local_prefect_server(home) as url:
            registered = subprocess.run(
                [sys.executable, "-m", "deployments.flows"],
                env={**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url},
                cwd=Path(__file__).resolve().parents[2],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert registered.returncode == 0, registered.stderr[-2000:]
            _pause_review_media_trigger(url)
            yield url
    except ServerDidNotStart as exc:
        service_missing("Prefect server", str(exc))


def _pause_review_media_trigger(url: str) -> None:
    """The API tests' flows make versions on this server, and their workers take whatever runs
    are due: the review media of those versions would pile up as runs that another test's
    worker takes. The trigger itself is tested in tests/flows/test_flows_review.py."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.registry import FLOWS

    (trigger,) = FLOWS["review-media"].triggers
    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        automations = client.read_automations_by_name(trigger["name"])
        assert automations, f"the {trigger['name']!r} automation was registered"
        for automation in automations:
            client.pause_automation(automation.id)
