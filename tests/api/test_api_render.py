"""Render jobs through the API: submit (GPU hosts read from a real Prefect server), list,
show with per-chunk progress, cancel, retry-failed; every bad input a 422 with nothing
recorded; roles; idempotent submits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.render.models import RenderChunk, RenderJob
from tests.support.render import gpu_host
from tests.support.world import World, build_world

COMMAND = ["render", "-s", "{first}", "-e", "{last}", "-o", "{output}"]


@pytest.fixture
def farm(prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app reads GPU hosts from the session's Prefect server, where one host has 2 GPUs."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    with gpu_host(prefect_api, f"api-{uuid.uuid4().hex[:8]}", 2):
        yield prefect_api


def _body(world: World, **fields) -> dict:
    return {"task_id": world.a.task_id, "command": COMMAND, "frames": "1001-1025", "chunk_size": 10, **fields}


def _jobs(database) -> tuple[int, int]:
    with UnitOfWork(database) as uow:
        return (
            uow.session.scalar(select(func.count()).select_from(RenderJob)),
            uow.session.scalar(select(func.count()).select_from(RenderChunk)),
        )


def test_submit_list_show_cancel(client, world: World, farm, database, tmp_path):
    headers = world.headers("coordinator")
    url = f"/projects/{world.a.project_id}/renders"
    answer = client.post(
        url, json=_body(world, priority=80, environment={"OCIO": "/a.ocio"}), headers=headers
    )
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert (job["state"], job["frames"], job["frame_count"], job["priority"], job["pool"]) == (
        "queued",
        "1001-1025",
        25,
        80,
        "bifrost-gpu",
    )
    assert job["output_dir"].endswith(f"/render/PRJA/job-{job['id']}")
    assert job["created_by"] == world.user_ids["coordinator"]

    listed = client.get(url, headers=headers).json()
    # The world's own job (running) comes first.
    assert [item["id"] for item in listed["items"]] == [world.a.render_id, job["id"]]
    assert listed["items"][1]["progress"]["frames_total"] == 25
    assert listed["items"][1]["progress"]["chunks"]["pending"] == 3
    assert client.get(url, params={"state": "queued"}, headers=headers).json()["items"] == [
        listed["items"][1]
    ]
    assert client.get(url, params={"state": "sleeping"}, headers=headers).status_code == 422

    with UnitOfWork(database) as uow:
        uow.session.execute(
            update(RenderChunk)
            .where(RenderChunk.job_id == job["id"], RenderChunk.index == 0)
            .values(state="completed", attempts=1, host="h")
        )
        uow.commit()
    shown = client.get(f"/renders/{job['id']}", headers=world.headers("artist")).json()
    assert shown["progress"]["frames_done"] == 10
    assert [(c["index"], c["frames"], c["state"], c["host"]) for c in shown["chunks"]] == [
        (0, "1001-1010", "completed", "h"),
        (1, "1011-1020", "pending", None),
        (2, "1021-1025", "pending", None),
    ]

    cancelled = client.post(f"/renders/{job['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    states = [c["state"] for c in client.get(f"/renders/{job['id']}", headers=headers).json()["chunks"]]
    assert states == ["completed", "cancelled", "cancelled"]
    retried = client.post(f"/renders/{job['id']}/retry-failed", headers=headers)
    assert retried.status_code == 409
    assert retried.json()["error"]["code"] == "invalid_transition"


def test_retry_failed(client, world: World, farm, database):
    headers = world.headers("supervisor")
    job = client.post(f"/projects/{world.a.project_id}/renders", json=_body(world), headers=headers).json()
    with UnitOfWork(database) as uow:
        uow.session.execute(
            update(RenderChunk)
            .where(RenderChunk.job_id == job["id"], RenderChunk.index == 1)
            .values(state="failed", attempts=3)
        )
        uow.session.execute(
            update(RenderJob).where(RenderJob.id == job["id"]).values(state="failed", report="chunk 1 failed")
        )
        uow.commit()
    retried = client.post(f"/renders/{job['id']}/retry-failed", headers=headers)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["report"]) == ("queued", None)
    chunk = client.get(f"/renders/{job['id']}", headers=headers).json()["chunks"][1]
    assert (chunk["state"], chunk["attempts"]) == ("pending", 0)


def test_a_retried_submit_with_its_idempotency_key_submits_once(client, world: World, farm, database):
    headers = {**world.headers("coordinator"), "Idempotency-Key": uuid.uuid4().hex}
    url = f"/projects/{world.a.project_id}/renders"
    before = _jobs(database)
    first = client.post(url, json=_body(world), headers=headers)
    again = client.post(url, json=_body(world), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert _jobs(database) == (before[0] + 1, before[1] + 3)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"frames": "1-100x-2"}, "the step must be a positive number"),
        ({"frames": "nonsense"}, "invalid frame set part 'nonsense'"),
        ({"frames": ""}, "the frame set is empty"),
        ({"frames": "1-500000"}, "more than 100,000 frames"),
        ({"frames": "1-50000", "chunk_size": 1}, "more than 20,000 chunks"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"pool": "bifrost-cpu"}, "unknown pool 'bifrost-cpu'"),
        ({"command": ["render", "{frame}"]}, "unknown placeholder {frame}"),
        ({"command": "render -s {first}"}, "must be a list of arguments"),
        ({"command": []}, "the command is empty"),
        ({"command": ["render", "{scene}"]}, "uses {scene} but no scene is given"),
        ({"scene": "/no/such/file.blend"}, "does not exist"),
        ({"gpus_per_chunk": 3}, "no registered GPU host has that many (the most is 2"),
        ({"environment": {"BAD-NAME": "x"}}, "not a variable name"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"retries": 11}, "retries"),
    ],
)
def test_bad_input_is_a_422_and_records_nothing(client, world: World, farm, database, fields, says):
    before = _jobs(database)
    answer = client.post(
        f"/projects/{world.a.project_id}/renders", json=_body(world, **fields), headers=world.headers("admin")
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert says in error["message"], error
    assert _jobs(database) == before


def test_no_gpu_host_registered_is_a_422(client, world: World, prefect_api, monkeypatch, database):
    before = _jobs(database)
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    answer = client.post(
        f"/projects/{world.a.project_id}/renders", json=_body(world), headers=world.headers("admin")
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == (
        "no GPU host is registered (start `bifrost worker --pool bifrost-gpu --gpus N`)"
    )
    assert _jobs(database) == before


def test_without_prefect_bad_input_is_still_a_422_and_good_input_a_503(client, world: World, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    url = f"/projects/{world.a.project_id}/renders"
    headers = world.headers("admin")
    assert client.post(url, json=_body(world, frames="x"), headers=headers).status_code == 422
    answer = client.post(url, json=_body(world), headers=headers)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "prefect_unavailable"


def test_roles_and_scope(client, world: World, farm):
    url = f"/projects/{world.a.project_id}/renders"
    assert client.post(url, json=_body(world), headers=world.headers("client")).status_code == 403
    assert client.get(url, headers=world.headers("client")).status_code == 403
    mine = client.post(url, json=_body(world), headers=world.headers("artist"))
    assert mine.status_code == 201
    job_id = mine.json()["id"]
    # Another project's coordinator does not see it; the service account may not submit.
    assert client.get(f"/renders/{job_id}", headers=world.headers("b_coordinator")).status_code == 404
    assert client.post(f"/renders/{job_id}/cancel", headers=world.headers("b_coordinator")).status_code == 404
    assert client.post(url, json=_body(world), headers=world.headers("service")).status_code == 403
    # A task of project B named in project A's route is not found.
    other = _body(world, task_id=world.b.task_id)
    assert client.post(url, json=other, headers=world.headers("admin")).status_code == 404
    assert client.post(f"/renders/{job_id}/cancel", headers=world.headers("artist")).json()["state"] == (
        "cancelled"
    )


def test_the_python_client_submits_follows_cancels_and_retries(serve, database, prefect_api: str) -> None:
    from bifrost_client import ApiError, BifrostClient

    world = build_world(database)
    before = _jobs(database)
    url = serve({"BIFROST_DATABASE_URL": database.url, "PREFECT_API_URL": prefect_api})
    with (
        gpu_host(prefect_api, f"client-{uuid.uuid4().hex[:8]}", 1),
        BifrostClient(url, world.tokens["coordinator"]) as bifrost,
    ):
        job = bifrost.submit_render(
            world.a.project_id, task_id=world.a.task_id, command=COMMAND, frames="1-20", chunk_size=5
        )
        assert (job.state, job.frame_count, job.chunk_size) == ("queued", 20, 5)
        shown = bifrost.render(job.id)
        assert shown.frames_done == 0 and [c["frames"] for c in shown.chunks] == [
            "1-5",
            "6-10",
            "11-15",
            "16-20",
        ]
        assert [j.id for j in bifrost.renders(world.a.project_id, state="queued")] == [job.id]
        with pytest.raises(ApiError) as refused:
            bifrost.submit_render(
                world.a.project_id, task_id=world.a.task_id, command=COMMAND, frames="1-20", gpus_per_chunk=2
            )
        assert (refused.value.status, refused.value.code) == (422, "invalid_input")
        with UnitOfWork(database) as uow:
            uow.session.execute(
                update(RenderChunk)
                .where(RenderChunk.job_id == job.id, RenderChunk.index == 3)
                .values(state="failed")
            )
            uow.session.execute(update(RenderJob).where(RenderJob.id == job.id).values(state="failed"))
            uow.commit()
        assert bifrost.wait_render(job.id, timeout=10, poll=0.1).state == "failed"
        assert bifrost.retry_render(job.id).state == "queued"
        assert bifrost.cancel_render(job.id).state == "cancelled"
    assert _jobs(database) == (before[0] + 1, before[1] + 4)
