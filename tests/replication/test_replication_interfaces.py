"""Replication as the operators see it: `bifrost storage replicas|du` and `bifrost verify`,
the API's GET /storage/replicas (admins only), the lag gauges of /metrics, and bad settings
refused in one line by the CLI and with a 422 by the API."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.metrics import StoreCollector
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import get_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.replication import service as replication
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.repository import UserRepository
from bifrost_core.users.schemas import TokenCreate, UserCreate
from tests.replication.conftest import World
from tests.support.ingest import OPERATOR, frames, planned, run_planned, write
from tests.support.runs import invoke


@pytest.fixture
def cli_world(world: World, bifrost_env, monkeypatch: pytest.MonkeyPatch) -> World:
    for name, value in world.env().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return world


def stored(world: World, tmp_path) -> int:
    """Two frames and a movie into hot; their bytes."""
    paths = frames(tmp_path / "src", "plate", 1001, 1002)
    paths.append(write(tmp_path / "src" / "plate.1003.exr", os.urandom(100_000)))
    run_planned(world.database, world.settings, [planned(paths)])
    return sum(path.stat().st_size for path in paths)


def test_the_cli_lists_replicas_with_their_lag_and_verify_reports_a_lost_copy(
    database, production, cli_world, tmp_path
) -> None:
    world = cli_world
    size = stored(world, tmp_path)
    listed = json.loads(invoke("storage", "replicas", "--json").output)
    assert [(r["tier"], r["replica"], r["blobs"], r["bytes"], r["replicated"]) for r in listed] == sorted(
        [("hot", world.s3_replica, 3, size, 0), ("hot", world.folder_replica, 3, size, 0)]
    )
    assert all(r["oldest_seconds"] >= 0 for r in listed)
    table = invoke("storage", "replicas").output
    assert "Replicas and their lag" in table and f"{size:,}" in table
    du = json.loads(invoke("storage", "du", "--json").output)
    assert {r["replica"]: r["blobs"] for r in du["replication"]} == {
        world.s3_replica: 3,
        world.folder_replica: 3,
    }
    assert f"replica {world.s3_replica} of hot: 0 blob(s) replicated, 3 not yet ({size:,} bytes" in (
        invoke("storage", "du").output
    )

    assert replication.replicate(database, world.settings, actor=SYSTEM).ok
    listed = json.loads(invoke("storage", "replicas", "--json").output)
    assert [(r["blobs"], r["bytes"], r["oldest_seconds"], r["replicated"]) for r in listed] == [
        (0, 0, None, 3)
    ] * 2
    ok = invoke("verify")
    assert "verified 3 blob location(s) and 6 replica copies: 0 damaged" in ok.output
    assert (
        f"replica {world.folder_replica} of hot: 3 blob(s) replicated, 0 not yet (0 bytes; oldest none)"
        in ok.output
    )

    lost = replication.replica_store(world.settings, replication.Replica("hot", world.s3_replica))
    digest = sorted(info.digest for info in lost.iter_blobs())[0]
    lost.delete(digest)
    damaged = invoke("verify", code=9)
    assert f"MISSING: blob {digest} in hot replica {world.s3_replica} at " in damaged.output
    assert "verified 3 blob location(s) and 6 replica copies: 1 damaged" in damaged.output
    assert f"replica {world.s3_replica} of hot: 2 blob(s) replicated, 1 not yet" in damaged.output
    # The lost copy's record went with the finding: the lag counts it again, and JSON says so too.
    report = json.loads(invoke("verify", "--json").output)
    assert report["findings"] == [] and report["copies_checked"] == 5
    assert {r["replica"]: r["blobs"] for r in report["replication"]} == {
        world.s3_replica: 1,
        world.folder_replica: 0,
    }


def test_the_cli_refuses_bad_replica_settings_in_one_line(
    database, production, cli_world, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"hot": ["s3://nowhere/hot"]}))
    get_settings.cache_clear()
    refused = invoke("storage", "replicas", code=7)
    assert refused.output.startswith(
        "error: BIFROST_STORAGE_REPLICAS: replica 's3://nowhere/hot' of tier hot is not inside a root"
    )
    assert refused.output.count("\n") == 1
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"cold": [cli_world.s3_replica]}))
    get_settings.cache_clear()
    unknown = invoke("storage", "du", code=7)
    assert unknown.output == (
        "error: BIFROST_STORAGE_REPLICAS: no storage tier named 'cold' (tiers: archive, hot)\n"
    )


def _token(database, username: str, *, new: bool = False) -> dict[str, str]:
    """Bearer headers of a token of `username` (a `new` user is created, not an admin)."""
    with UnitOfWork(database) as uow:
        if new:
            user = users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username=username))
        else:
            user = UserRepository(uow.session).by_username(username)
        actor = users.actor_for_user(uow.session, user)
        token = users.create_token(
            uow.session, actor=actor, user_id=user.id, data=TokenCreate(name="t")
        ).token
        uow.commit()
    return {"Authorization": f"Bearer {token}"}


def test_the_api_shows_replicas_to_admins_and_refuses_a_project_tier_on_a_replica(
    database, production, world, tmp_path
) -> None:
    size = stored(world, tmp_path)
    admin = _token(database, OPERATOR)
    artist = _token(database, "pat", new=True)
    api = create_app(world.settings, database=database, cache=LocalCache())
    with TestClient(api, raise_server_exceptions=False) as client:
        answer = client.get("/storage/replicas", headers=admin)
        assert answer.status_code == 200, answer.text
        assert {r["replica"]: (r["blobs"], r["bytes"]) for r in answer.json()["replicas"]} == {
            world.s3_replica: (3, size),
            world.folder_replica: (3, size),
        }
        refused = client.get("/storage/replicas", headers=artist)
        assert refused.status_code == 403
        assert client.get("/storage/replicas").status_code == 401

        # A project's own tier may not be written to a replica's root.
        on_replica = client.post(
            "/projects",
            json={
                "code": "DR",
                "name": "On the replica",
                "storage_tiers": {"hot": f"{world.folder_replica}/dr"},
            },
            headers=admin,
        )
        assert on_replica.status_code == 422
        assert "is the same as or nested with the replica" in on_replica.text

        replication.replicate(database, world.settings, actor=SYSTEM)
        after = client.get("/storage/replicas", headers=admin).json()["replicas"]
        assert [(r["blobs"], r["oldest_seconds"], r["replicated"]) for r in after] == [(0, None, 3)] * 2


def test_metrics_carry_the_lag_of_each_replica(database, production, world, tmp_path) -> None:
    size = stored(world, tmp_path)

    def gauges() -> dict[tuple[str, str], float]:
        found = {}
        for family in StoreCollector(database, world.settings)._read():
            if family.name.startswith("bifrost_replication_lag"):
                for sample in family.samples:
                    found[(sample.name, sample.labels["replica"])] = sample.value
        return found

    before = gauges()
    assert before[("bifrost_replication_lag_blobs", world.s3_replica)] == 3
    assert before[("bifrost_replication_lag_bytes", world.folder_replica)] == size
    assert before[("bifrost_replication_lag_oldest_seconds", world.s3_replica)] >= 0
    replication.replicate(database, world.settings, actor=SYSTEM)
    after = gauges()
    assert set(after.values()) == {0}
    assert len(after) == 6


def test_init_checks_every_replica(bifrost_env, monkeypatch) -> None:
    """`bifrost init` probes each replica as it probes the tier roots: a missing one is exit 7."""
    replica = bifrost_env / "storage" / "dr-hot"
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"hot": [str(replica)]}))
    refused = invoke("init", code=7)
    assert refused.output == f"error: storage tier hot replica {replica}: {replica} does not exist\n"
    replica.mkdir(parents=True)
    assert "admin" in invoke("init").output
