"""Flow triggering against a real Prefect server: the request creates a flow run of the
deployment and returns at once; a worker (another process) runs it; the API reads its
state and summary. Runs are project-scoped like every other id."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bifrost_client import BifrostClient
from sqlalchemy import func, select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.events.models import Event
from bifrost_core.projects.models import Project
from bifrost_core.versions.models import Version
from tests.support.runs import only_these_runs_due
from tests.support.world import World, build_world

pytestmark = pytest.mark.slow


@pytest.fixture
def flows_client(make_client, prefect_api: str, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    return make_client()


def start_worker(prefect_api: str, database_url: str, tmp_path: Path, run_ids: list[str]) -> subprocess.Popen:
    """A `--run-once` worker of the deployments' pool in its own process, logging to worker.log,
    for the runs `run_ids`: the session's Prefect server also holds runs other tests scheduled
    and never ran, which it would otherwise run against this test's database."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        only_these_runs_due(run_ids)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "BIFROST_DATABASE_URL": database_url,
        "BIFROST_HOME": str(tmp_path / "worker-home"),
        # The deployments' pull step runs each flow from the worker's clone.
        "BIFROST_CHECKOUT": str(Path(__file__).resolve().parents[2]),
    }
    command = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", "bifrost-cpu"]
    return subprocess.Popen(
        [*command, "--run-once"],
        env=env,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )


def matching_delivery(tmp_path: Path) -> Path:
    """A delivery with one frame for the world's shot sq010/sh010: an ingest where nothing
    matched fails (issue #10, defect 11)."""
    frame = tmp_path / "delivery" / "sq010" / "sh010" / "anim" / "anim.1001.exr"
    frame.parent.mkdir(parents=True)
    frame.write_bytes(b"frame")
    return tmp_path / "delivery"


def test_ingest_run_is_started_read_and_scoped(
    flows_client, world: World, prefect_api, database, tmp_path
) -> None:
    delivery = matching_delivery(tmp_path)
    url = f"/projects/{world.a.project_id}/flows/ingest/runs"
    body = {"source": str(delivery), "dry_run": True}
    started = flows_client.post(url, json=body, headers=world.headers("supervisor"))
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["flow"] == "ingest"
    assert run["state"] == "SCHEDULED"

    read = flows_client.get(f"/flow-runs/{run['run_id']}", headers=world.headers("supervisor"))
    assert read.status_code == 200
    assert read.json()["run_id"] == run["run_id"]
    assert (
        flows_client.get(f"/flow-runs/{run['run_id']}", headers=world.headers("b_coordinator")).status_code
        == 404
    )
    assert flows_client.get(f"/flow-runs/{run['run_id']}", headers=world.headers("client")).status_code == 403
    assert flows_client.post(url, json=body, headers=world.headers("artist")).status_code == 403
    listed = flows_client.get(
        f"/projects/{world.a.project_id}/flow-runs", headers=world.headers("artist")
    ).json()
    assert run["run_id"] in [item["run_id"] for item in listed["items"]]

    # A worker of the deployment's pool (its own process) picks the run up and runs it.
    worker = start_worker(prefect_api, database.url, tmp_path, [run["run_id"]])
    try:
        deadline = time.monotonic() + 240
        state = None
        while time.monotonic() < deadline:
            answer = flows_client.get(
                f"/flow-runs/{run['run_id']}", headers=world.headers("supervisor")
            ).json()
            state = answer["state"]
            if state in ("COMPLETED", "FAILED", "CRASHED") and (state != "COMPLETED" or answer["summary"]):
                break
            time.sleep(1)
        assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        assert "Ingest plan" in answer["summary"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def wait_for(client, run_ids: list[str], headers: dict[str, str], log: Path) -> None:
    """Until every run has ended; each must have completed."""
    deadline = time.monotonic() + 240
    pending = set(run_ids)
    while pending and time.monotonic() < deadline:
        for run_id in list(pending):
            state = client.get(f"/flow-runs/{run_id}", headers=headers).json()["state"]
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                assert state == "COMPLETED", log.read_text()[-3000:]
                pending.discard(run_id)
        time.sleep(1)
    assert not pending, log.read_text()[-3000:]


def test_runs_started_through_the_api_act_as_the_caller(
    flows_client, world: World, prefect_api, database, tmp_path
) -> None:
    """An admin starts an ingest and a publish; a worker runs them: every version, task and
    event they write names the admin (they used to name nobody)."""
    delivery = tmp_path / "delivery"
    (delivery / "sq010" / "sh010" / "comp").mkdir(parents=True)
    for frame in (1001, 1002):
        (delivery / "sq010" / "sh010" / "comp" / f"comp.{frame}.exr").write_bytes(b"frame %d" % frame)
    look = tmp_path / "look.abc"
    look.write_bytes(b"alembic")
    with UnitOfWork(database) as uow:
        last_event = uow.session.scalar(select(func.max(Event.id)))
    admin = world.headers("admin")
    project = f"/projects/{world.a.project_id}/flows"
    publish = {"asset": "hero", "task": "look", "files": [str(look)]}
    started = [
        flows_client.post(f"{project}/ingest/runs", json={"source": str(delivery)}, headers=admin),
        flows_client.post(f"{project}/publish/runs", json=publish, headers=admin),
    ]
    assert [answer.status_code for answer in started] == [202, 202], started[0].text
    run_ids = [answer.json()["run_id"] for answer in started]
    worker = start_worker(prefect_api, database.url, tmp_path, run_ids)
    try:
        wait_for(flows_client, run_ids, admin, tmp_path / "worker.log")
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    admin_id = world.user_ids["admin"]
    with UnitOfWork(database) as uow:
        events = uow.session.execute(select(Event.kind, Event.actor_id).where(Event.id > last_event)).all()
        authors = uow.session.scalars(
            select(Version.author_id).where(Version.id.not_in([world.a.version_id, world.b.version_id]))
        ).all()
    assert authors == [admin_id, admin_id]
    kinds = sorted(kind for kind, _ in events)
    assert {"version.created", "task.created", "ingest.finished"} <= set(kinds), kinds
    assert kinds.count("version.created") == 2 and kinds.count("ingest.finished") == 2
    assert {actor_id for _, actor_id in events} == {admin_id}


def test_python_client_starts_a_flow_and_waits(serve, database, prefect_api: str, tmp_path) -> None:
    world = build_world(database)
    url = serve({"BIFROST_DATABASE_URL": database.url, "PREFECT_API_URL": prefect_api})
    with BifrostClient(url, world.tokens["service"]) as bifrost:
        source = str(matching_delivery(tmp_path))
        run = bifrost.start_flow(world.a.project_id, "ingest", {"source": source, "dry_run": True})
        # The worker polls once (--run-once): started after the run exists, it cannot miss it.
        worker = start_worker(prefect_api, database.url, tmp_path, [run["run_id"]])
        try:
            done = bifrost.wait(run["run_id"], timeout=240, poll=1)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert done["state"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    assert done["summary"].startswith("# Ingest plan")


def test_flows_of_a_closed_project_are_refused_before_prefect(flows_client, world: World, database) -> None:
    with UnitOfWork(database) as uow:
        project = uow.session.get(Project, world.a.project_id)
        project.status = "closed"
        code = project.code
        uow.commit()
    runs = f"/projects/{world.a.project_id}/flow-runs"
    before = flows_client.get(runs, headers=world.headers("supervisor")).json()["items"]
    for flow, body, who in (
        ("ingest", {"source": "/tmp/delivery"}, "supervisor"),
        ("publish", {"task": "anim", "files": ["/tmp/anim.exr"]}, "artist"),
    ):
        url = f"/projects/{world.a.project_id}/flows/{flow}/runs"
        answer = flows_client.post(url, json=body, headers=world.headers(who))
        assert answer.status_code == 409, answer.text
        message = answer.json()["error"]["message"]
        assert message == f"project {code} is closed: reopen it to ingest or publish"
    assert flows_client.get(runs, headers=world.headers("supervisor")).json()["items"] == before


def test_publish_run_refuses_bad_parameters_before_prefect(flows_client, world: World) -> None:
    url = f"/projects/{world.a.project_id}/flows/publish/runs"
    answer = flows_client.post(url, json={"task": "anim", "files": []}, headers=world.headers("artist"))
    assert answer.status_code == 422
