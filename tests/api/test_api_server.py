"""Against real servers: `bifrost serve` (uvicorn) on a free port, Redis, the Python client."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from bifrost_client import ApiError, BifrostClient
from sqlalchemy import func, select

from bifrost_core.cache.backends import RedisCache
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ShotUpdate
from bifrost_core.scope import SYSTEM
from bifrost_core.versions.models import Version
from tests.support.world import World, build_world

pytestmark = pytest.mark.slow


def test_twenty_concurrent_identical_posts_create_one_row(serve, database) -> None:
    world = build_world(database)
    url = serve({"BIFROST_DATABASE_URL": database.url}, workers=2)
    headers = {**world.headers("artist"), "Idempotency-Key": "publish-sh010-anim-1"}
    body = {"task_id": world.a.task_id, "comment": "once"}

    def post(_: int) -> httpx.Response:
        return httpx.post(f"{url}/versions", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert [a.status_code for a in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 19
    with UnitOfWork(database) as uow:
        assert uow.session.scalar(select(func.count()).where(Version.comment == "once")) == 1


def test_redis_cache_is_invalidated_after_commit(make_client, world: World, redis_url: str, database) -> None:
    cache = RedisCache(redis_url)
    client = make_client(cache=cache)
    headers = world.headers("coordinator")
    shot_url = f"/shots/{world.a.shot_id}"
    key = f"e:shot:{world.a.shot_id}"

    assert client.get(shot_url, headers=headers).json()["description"] == ""
    assert cache.get_many([key])[0] is not None  # the read filled the cache
    assert client.patch(shot_url, json={"description": "v2"}, headers=headers).status_code == 200
    assert client.get(shot_url, headers=headers).json()["description"] == "v2"

    # A change made outside the API (a flow, the CLI) evicts the entry once it commits, not before.
    with UnitOfWork(database) as uow:
        projects.update_shot(
            uow.session, actor=SYSTEM, shot_id=world.a.shot_id, data=ShotUpdate(description="v3")
        )
        assert cache.get_many([key])[0] is not None
        assert client.get(shot_url, headers=headers).json()["description"] == "v2"
        uow.commit()
    assert cache.get_many([key])[0] is None
    assert client.get(shot_url, headers=headers).json()["description"] == "v3"

    # A rolled-back change evicts nothing.
    with UnitOfWork(database) as uow:
        projects.update_shot(
            uow.session, actor=SYSTEM, shot_id=world.a.shot_id, data=ShotUpdate(description="no")
        )
    assert cache.get_many([key])[0] is not None
    assert client.get(shot_url, headers=headers).json()["description"] == "v3"
    # The cached answer is still scoped: another project's token gets 404, not the shot.
    assert client.get(shot_url, headers=world.headers("b_coordinator")).status_code == 404
    cache.close()


def test_two_workers_share_the_redis_cache(serve, database, redis_url: str) -> None:
    world = build_world(database)
    url = serve({"BIFROST_DATABASE_URL": database.url, "BIFROST_REDIS_URL": redis_url}, workers=2)
    headers = world.headers("coordinator")
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        for _ in range(10):  # both workers have read (and cached) the shot
            http.get(f"/shots/{world.a.shot_id}").raise_for_status()
        for round_ in range(5):
            http.patch(f"/shots/{world.a.shot_id}", json={"description": f"r{round_}"}).raise_for_status()
            seen = {http.get(f"/shots/{world.a.shot_id}").json()["description"] for _ in range(6)}
            assert seen == {f"r{round_}"}
        # Revocation through the CLI's code path (another process) reaches the API's token cache.
        revoke = subprocess.run(
            [
                str(Path(sys.executable).parent / "bifrost"),
                "token",
                "revoke",
                str(world.token_ids["coordinator"]),
            ],
            env={
                "BIFROST_DATABASE_URL": database.url,
                "BIFROST_REDIS_URL": redis_url,
                "BIFROST_TOKEN": world.tokens["admin"],  # the CLI acts as a named user
                "PATH": "/usr/bin:/bin",
            },
            capture_output=True,
            text=True,
        )
        assert revoke.returncode == 0, revoke.stderr
        assert "revoked token" in revoke.stdout
        assert http.get("/projects").status_code == 401


def test_python_client_against_the_running_app(serve, database) -> None:
    world = build_world(database)
    url = serve({"BIFROST_DATABASE_URL": database.url})
    with BifrostClient(url, world.tokens["coordinator"]) as bifrost:
        assert bifrost.me()["username"] == "coordinator"
        project_id = world.a.project_id
        created = [
            bifrost.create(f"/sequences/{world.a.sequence_id}/shots", {"code": f"c{i:03}"}) for i in range(12)
        ]
        codes = [shot["code"] for shot in bifrost.list(f"/projects/{project_id}/shots", page_size=5)]
        assert codes == ["sh010", *(shot["code"] for shot in created)]
        assert bifrost.update("shots", created[0]["id"], {"status": "on_hold"})["status"] == "on_hold"
        on_hold = list(bifrost.list(f"/projects/{project_id}/shots", status="on_hold"))
        assert [shot["id"] for shot in on_hold] == [created[0]["id"]]

        first = bifrost.publish(world.a.task_id, comment="v", idempotency_key="k1")
        again = bifrost.publish(world.a.task_id, comment="v", idempotency_key="k1")
        assert first == again
        assert bifrost.publish(world.a.task_id).number == first.number + 1

        results = bifrost.bulk(
            project_id, [{"op": "update_shot", "id": world.a.shot_id, "data": {"status": "omitted"}}]
        )
        assert results == [{"op": "update_shot", "id": world.a.shot_id}]
        with pytest.raises(ApiError) as error:
            bifrost.get("shots", world.b.shot_id)
        assert (error.value.status, error.value.code) == (404, "not_found")
