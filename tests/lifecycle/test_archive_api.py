"""The archive routes: policy (checked: 422), plan (dry run; 409 without force when it would
archive everything), restore (200; 202 "restoring" from a cold tier; 409 naming damaged
blobs), shots marked final; a non-member gets 404."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.lifecycle import moves
from bifrost_core.projects.models import Shot
from bifrost_core.scope import SYSTEM
from bifrost_core.users import service as users
from bifrost_core.users.repository import UserRepository
from bifrost_core.users.schemas import TokenCreate, UserCreate
from tests.support.archive import blobs_of, store_of, three_versions, tiers_of
from tests.support.ingest import OPERATOR


def _token(database, username: str, *, admin: bool) -> dict[str, str]:
    with UnitOfWork(database) as uow:
        if admin:
            user = UserRepository(uow.session).by_username(username)
        else:
            user = users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username=username))
        actor = users.actor_for_user(uow.session, user)
        token = users.create_token(
            uow.session, actor=actor, user_id=user.id, data=TokenCreate(name="t")
        ).token
        uow.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(database, settings):
    with TestClient(
        create_app(settings, database=database, cache=LocalCache()), raise_server_exceptions=False
    ) as c:
        yield c


def test_archive_routes(database, production, settings, client, tmp_path):
    v1, v2, v3 = three_versions(database, settings, tmp_path)
    admin = _token(database, OPERATOR, admin=True)
    base = f"/projects/{production.project_id}"

    bad = client.put(f"{base}/archive-policy", json={"keep_latest": -1}, headers=admin)
    assert bad.status_code == 422 and "keep_latest" in bad.json()["error"]["message"]
    bad = client.put(f"{base}/archive-policy", json={"keep_latest": 1, "tier": "glacier"}, headers=admin)
    assert bad.status_code == 422 and "has no storage tier 'glacier'" in bad.json()["error"]["message"]
    done = client.put(f"{base}/archive-policy", json={"keep_latest": 1}, headers=admin)
    assert done.status_code == 200 and done.json()["rules"]["keep_latest"] == 1
    assert client.get(f"{base}/archive-policy", headers=admin).json()["rules"]["tier"] == "archive"

    plan = client.get(f"{base}/archive/plan", headers=admin)
    assert plan.status_code == 200
    assert [m["version_id"] for m in plan.json()["versions"]] == [v1, v2]
    assert {t["tier"]: t["added"] for t in plan.json()["tiers"]}["archive"] == 24576

    moves.archive_project(database, settings, actor=SYSTEM, project="DEMO")
    restored = client.post(f"{base}/archive/restore", json={"version_ids": [v1]}, headers=admin)
    assert restored.status_code == 200, restored.text
    assert restored.json()["outcomes"][0]["state"] == "restored"
    with UnitOfWork(database) as uow:
        shot_id = uow.session.scalars(select(Shot.id).where(Shot.code == "sh010")).one()
    by_shot = client.post(f"{base}/archive/restore", json={"shot_id": shot_id}, headers=admin)
    assert [o["state"] for o in by_shot.json()["outcomes"]] == ["hot", "restored", "hot"]
    both = client.post(
        f"{base}/archive/restore", json={"shot_id": shot_id, "version_ids": [v1]}, headers=admin
    )
    assert both.status_code == 422 and "exactly one" in both.json()["error"]["message"]
    assert (
        client.post(f"{base}/archive/restore", json={"version_ids": [999]}, headers=admin).status_code == 404
    )

    # Everything selected: 409 unless forced.
    assert client.put(f"/shots/{shot_id}/final", headers=admin).status_code == 204
    client.put(
        f"{base}/archive-policy", json={"final_shot_after_days": 0, "restored_hold_days": 0}, headers=admin
    )
    refused = client.get(f"{base}/archive/plan", headers=admin)
    assert refused.status_code == 409 and "--force" in refused.json()["error"]["message"]
    assert client.get(f"{base}/archive/plan?force=true", headers=admin).status_code == 200

    # A stranger sees no such project.
    stranger = _token(database, "stranger", admin=False)
    assert client.get(f"{base}/archive-policy", headers=stranger).status_code == 404
    assert (
        client.post(f"{base}/archive/restore", json={"version_ids": [v1]}, headers=stranger).status_code
        == 404
    )
    assert v3


def test_restore_answers_202_from_a_cold_tier_and_409_for_a_damaged_copy(
    database, production, settings, tmp_path
):
    v1, _v2, _v3 = three_versions(database, settings, tmp_path)
    admin = _token(database, OPERATOR, admin=True)
    base = f"/projects/{production.project_id}"
    cold = settings.model_copy(update={"tier_restore_delays": {"archive": 90}})
    with TestClient(
        create_app(cold, database=database, cache=LocalCache()), raise_server_exceptions=False
    ) as client:
        client.put(f"{base}/archive-policy", json={"keep_latest": 2}, headers=admin)
        moves.archive_project(database, settings, actor=SYSTEM, project="DEMO")
        pending = client.post(f"{base}/archive/restore", json={"version_ids": [v1]}, headers=admin)
        assert pending.status_code == 202
        body = pending.json()
        assert body["status"] == "restoring" and 0 < body["ready_in"] <= 90
        assert "restoring, ready in 90 s" in body["message"]
    victim = sorted(blobs_of(database, v1))[0]
    path = store_of(settings, "archive").local_path(victim)
    path.chmod(0o644)
    path.write_bytes(b"bit rot")
    with TestClient(
        create_app(settings, database=database, cache=LocalCache()), raise_server_exceptions=False
    ) as client:
        damaged = client.post(f"{base}/archive/restore", json={"version_ids": [v1]}, headers=admin)
    assert damaged.status_code == 409
    assert (
        damaged.json()["error"]["code"] == "damaged_content" and victim in damaged.json()["error"]["message"]
    )
    assert "hot" not in tiers_of(database, victim)
