"""The studio-wide upkeep flows (flows/maintenance.py): `verify` fails its run on damage,
`storage-gc` reports what it would remove by default; only an admin runs them, from the
CLI without a project; the API has no per-project route for them."""

from __future__ import annotations

import json
import os
import time

from fastapi.testclient import TestClient

from api.app import create_app
from bifrost_core.cache.backends import LocalCache
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import DamagedContent, PermissionDenied
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.users import service as users
from bifrost_core.users.repository import UserRepository
from bifrost_core.users.schemas import TokenCreate, UserCreate
from tests.support.ingest import OPERATOR, frames, planned, run_planned
from tests.support.runs import invoke, read_run


def artifact(api: str, state, key: str) -> str:
    _, artifacts = read_run(api, state.state_details.flow_run_id)
    return {item.key: item for item in artifacts}[key].data


def test_verify_reports_and_fails_its_run_on_damage(
    database, production, settings, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from flows.maintenance import verify

    run_planned(database, settings, [planned(frames(tmp_path / "src", "plate", 1001, 1003))])
    state = verify(actor=OPERATOR, return_state=True)
    assert state.is_completed()
    assert state.result().report.checked == 3
    assert "# Verify: OK" in artifact(prefect_server, state, "verify-studio")

    store = BlobStore(settings.tier_roots["hot"])
    damaged = sorted(info.digest for info in store.iter_blobs())[0]
    store.local_path(damaged).unlink()
    state = verify(actor=OPERATOR, return_state=True)
    assert state.is_failed()
    assert state.message == "verify: 1 of 3 blob location(s) damaged"
    text = artifact(prefect_server, state, "verify-studio")
    assert text.startswith("**Failed: 1 of 3 blob location\\(s\\) damaged**")
    assert "| missing | 1 |" in text and damaged in text

    # The CLI: no project, one line and verify's exit code 9.
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    failed = invoke("flow", "run", "verify", "--param", "sample=3", "--json", code=9)
    assert failed.output.strip() == "error: verify: 1 of 3 blob location(s) damaged"
    assert "studio-wide" in invoke("flow", "run", "verify", "-p", "DEMO", code=2).output
    assert "works in a project" in invoke("flow", "run", "ingest", code=2).output
    assert "sample" in invoke("flow", "run", "verify", "--param", "sample=0", code=5).output


def test_storage_gc_is_a_dry_run_unless_told(
    database, production, settings, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from flows.maintenance import storage_gc

    store = BlobStore(settings.tier_roots["hot"])
    orphan = tmp_path / "orphan.bin"
    orphan.write_bytes(b"left by a crashed ingest" * 100)
    digest = store.put_file(orphan).digest
    path = store.local_path(digest)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))

    state = storage_gc(actor=OPERATOR, grace_hours=0.5, return_state=True)
    report = state.result().report
    assert (report.dry_run, report.blobs_removed, report.bytes_removed) == (True, 1, 2400)
    assert path.exists()
    text = artifact(prefect_server, state, "storage-gc-studio")
    assert "# Storage gc (dry run: nothing removed)" in text
    assert "| bytes would remove | 2,400 |" in text

    # Younger than the grace period: kept, and not counted.
    kept = storage_gc(actor=OPERATOR, grace_hours=2).report
    assert kept.blobs_removed == 0

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    done = json.loads(
        invoke(
            "flow", "run", "storage-gc", "--param", "grace_hours=0.5", "--param", "dry_run=false", "--json"
        ).output
    )
    assert (done["report"]["dry_run"], done["report"]["blobs_removed"]) == (False, 1)
    assert not path.exists()


def test_only_an_admin_runs_the_upkeep_flows(
    database, production, settings, flow_env, prefect_server, monkeypatch
) -> None:
    from flows.maintenance import verify

    with UnitOfWork(database) as uow:
        users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username="pat"))
        uow.commit()
    state = verify(actor="pat", return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, PermissionDenied)
    assert str(error) == "actor 'pat' may not run verify: only an admin may"

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    monkeypatch.setenv("BIFROST_USER", "pat")
    refused = invoke("flow", "run", "storage-gc", code=6)
    assert refused.output.strip() == "error: actor 'pat' may not run storage-gc: only an admin may"


def test_studio_flows_have_no_route_under_a_project(database, production, settings, flow_env) -> None:
    with UnitOfWork(database) as uow:
        user = UserRepository(uow.session).by_username(OPERATOR)
        actor = users.actor_for_user(uow.session, user)
        token = users.create_token(
            uow.session, actor=actor, user_id=user.id, data=TokenCreate(name="t")
        ).token
        project_id = ProjectRepository(uow.session).by_code("DEMO").id
        uow.commit()
    headers = {"Authorization": f"Bearer {token}"}
    api = create_app(load_settings(), database=database, cache=LocalCache())
    with TestClient(api, raise_server_exceptions=False) as client:
        refused = client.post(f"/projects/{project_id}/flows/verify/runs", json={}, headers=headers)
        assert refused.status_code == 404
        assert "studio-wide" in refused.json()["detail"] if "detail" in refused.json() else refused.text
        paths = client.get("/openapi.json").json()["paths"]
    assert "/projects/{project_id}/flows/ingest/runs" in paths
    assert not [path for path in paths if "/flows/verify/" in path or "/flows/storage-gc/" in path]


def test_damage_is_its_own_error() -> None:
    """What the CLI turns into exit code 9 (cli/errors.py), as `bifrost verify` does."""
    from cli.errors import exit_code

    assert exit_code(DamagedContent("x")) == 9
