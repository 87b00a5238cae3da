"""Read replicas on a real streaming replica (a primary and a standby of the test's own, made by
initdb and `pg_basebackup -R`): reads go to the replica, a caller reads its own writes at once,
a replica that lags beyond the bound or is down sends reads to the primary."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from tests.support.pg_cluster import Cluster, primary_with_replica
from tests.support.waiting import wait_for
from tests.support.world import World, build_world

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def execute(url: str, statement: str) -> object:
    engine = create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            result = connection.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with primary_with_replica() as (primary, replica):
        execute(primary.url(), "CREATE DATABASE bifrost")
        database = Database(primary.url("bifrost"))
        migrate.upgrade(database)
        database.dispose()
        yield primary, replica


@pytest.fixture(scope="module")
def world(pair) -> World:
    primary, replica = pair
    database = Database(primary.url("bifrost"))
    built = build_world(database)
    database.dispose()
    users = execute(primary.url("bifrost"), COUNT_USERS)
    wait_for("the replica to replay the world", lambda: execute(replica.url("bifrost"), COUNT_USERS) == users)
    return built


COUNT_USERS = "SELECT count(*) FROM users"


def app_client(pair, **settings) -> TestClient:
    primary, replica = pair
    settings = {
        "database_url": primary.url("bifrost"),
        "database_replica_urls": [replica.url("bifrost")],
        **settings,
    }
    return TestClient(
        create_app(load_settings(**settings), cache=LocalCache()), raise_server_exceptions=False
    )


def descriptions(client: TestClient, world: World, who: str) -> set[str]:
    answer = client.get(f"/projects/{world.a.project_id}/shots", headers=world.headers(who))
    assert answer.status_code == 200, answer.text
    return {shot["description"] for shot in answer.json()["items"]}


def write(client: TestClient, world: World, description: str) -> None:
    answer = client.patch(
        f"/shots/{world.a.shot_id}", json={"description": description}, headers=world.headers("coordinator")
    )
    assert answer.status_code == 200, answer.text


def test_reads_from_the_replica_own_writes_at_once_and_the_primary_when_it_lags_or_stops(
    bifrost_env, pair, world
):
    replica = pair[1]
    with app_client(pair, database_replica_max_lag_seconds=30) as client:
        write(client, world, "first")
        wait_for("the replica to replay it", lambda: descriptions(client, world, "artist") == {"first"})
        # Replay paused: the replica keeps answering with what it has, as a lagging one does.
        execute(replica.url("bifrost"), "SELECT pg_wal_replay_pause()")
        try:
            write(client, world, "second")
            assert descriptions(client, world, "artist") == {"first"}  # read from the replica
            assert descriptions(client, world, "coordinator") == {"second"}  # the writer's own write
            assert descriptions(client, world, "artist") == {"first"}
            # Behind by more than the bound: everyone reads from the primary.
            with app_client(pair, database_replica_max_lag_seconds=1) as strict:
                time.sleep(1.5)
                assert descriptions(strict, world, "artist") == {"second"}
        finally:
            execute(replica.url("bifrost"), "SELECT pg_wal_replay_resume()")
        wait_for("the replica to catch up", lambda: descriptions(client, world, "artist") == {"second"})

        replica.stop()
        try:
            write(client, world, "third")
            for _ in range(20):
                assert descriptions(client, world, "artist") == {"third"}
        finally:
            replica.start()
        wait_for(
            "the replica back", lambda: execute(replica.url("bifrost"), "SELECT pg_is_in_recovery()") is True
        )


def test_every_get_route_answers_through_a_replica(bifrost_env, pair, world):
    """No read route writes: on a hot standby a write would fail (and be a 500)."""
    from tests.api.test_api_routes import ROUTES, _ids

    ids = _ids(world, "")
    with app_client(pair) as client:
        wait_for("the replica in use", lambda: client.app.state.bifrost.replicas.state(0).usable)
        for (method, path), (_kind, _body) in ROUTES.items():
            if method != "GET":
                continue
            url = path.format(**{**ids, "target_id": _ids(world, path)["target_id"]})
            answer = client.get(url, headers=world.headers("admin"))
            # (Prefect is not running here: a run's state is a 503 of its own, not the database's.)
            fine = answer.status_code < 500 or answer.json()["error"]["code"] == "prefect_unavailable"
            assert fine, f"{url}: {answer.status_code} {answer.text[:300]}"


def test_each_replicas_streaming_and_replay_lag_are_metrics(bifrost_env, pair, world):
    from tests.api.test_api_metrics import scrape

    replica = pair[1]
    name = f"127.0.0.1:{replica.port}/bifrost"
    streaming = ("bifrost_db_replica_streaming", (("replica", name),))
    lag = ("bifrost_db_replica_lag_seconds", (("replica", name),))
    with app_client(pair) as client:
        wait_for("the replica streaming", lambda: scrape(client.get)[streaming] == 1)
        wait_for("the replica caught up", lambda: scrape(client.get)[lag] == 0)
        execute(replica.url("bifrost"), "SELECT pg_wal_replay_pause()")
        try:
            write(client, world, "lagging")
            # Received but not replayed: the lag grows from the last replayed commit's time.
            wait_for("the lag seen", lambda: scrape(client.get)[lag] > 1, timeout=30)
            assert scrape(client.get)[streaming] == 1
        finally:
            execute(replica.url("bifrost"), "SELECT pg_wal_replay_resume()")
        wait_for("the replica caught up again", lambda: scrape(client.get)[lag] == 0)

        replica.stop()
        try:
            wait_for("the replica seen down", lambda: scrape(client.get)[streaming] == 0)
            assert lag not in scrape(client.get)  # no figure rather than a made-up one
        finally:
            replica.start()
        wait_for("the replica back", lambda: scrape(client.get)[streaming] == 1)
