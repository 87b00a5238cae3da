"""Starting a run keeps the outbox rule (issue #11, item 2): Bifrost's record of the run
commits before Prefect is asked, Prefect is asked with a key derived from the record, and a
run whose start was lost is started again by the same key: never a second run."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.runs import service
from bifrost_core.runs.models import FlowRun
from bifrost_core.scope import SYSTEM
from deployments.runs import reconcile
from tests.support.runs import every_flow_run
from tests.support.world import World

pytestmark = pytest.mark.slow


@pytest.fixture
def flows_client(make_client, prefect_api: str, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    return make_client()


def prefect_runs(prefect_api: str) -> dict[str, str | None]:
    """Every flow run on the server: id -> idempotency key."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}), get_client(sync_client=True) as client:
        return {str(run.id): run.idempotency_key for run in every_flow_run(client)}


def records(database) -> list[tuple[str | None, str | None]]:
    with UnitOfWork(database) as uow:
        return [
            (run.run_id, run.request_key) for run in uow.session.scalars(select(FlowRun).order_by(FlowRun.id))
        ]


def test_a_retry_after_a_failed_commit_never_starts_a_second_run(
    flows_client, world: World, prefect_api, database, monkeypatch
) -> None:
    url = f"/projects/{world.a.project_id}/flows/ingest/runs"
    headers = {**world.headers("supervisor"), "Idempotency-Key": uuid.uuid4().hex}
    body = {"source": "/deliveries/one", "dry_run": True}
    before = prefect_runs(prefect_api)
    recorded = records(database)

    def database_gone(*args, **kwargs):
        raise OperationalError("UPDATE flow_runs", None, Exception("server closed the connection"))

    # Prefect created the run; storing its id then failed (the database went away).
    monkeypatch.setattr(service, "started", database_gone)
    assert flows_client.post(url, json=body, headers=headers).status_code == 503
    created = set(prefect_runs(prefect_api)) - set(before)
    assert len(created) == 1
    # The record committed first: pending, found again by the request's key.
    assert records(database)[len(recorded) :] == [
        (None, f"{world.user_ids['supervisor']}:{headers['Idempotency-Key']}")
    ]

    monkeypatch.undo()
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    retried = flows_client.post(url, json=body, headers=headers)
    assert retried.status_code == 202, retried.text
    assert {retried.json()["run_id"]} == created
    # Once answered, the same key replays the answer.
    again = flows_client.post(url, json=body, headers=headers)
    assert again.json()["run_id"] == retried.json()["run_id"]
    assert set(prefect_runs(prefect_api)) - set(before) == created
    assert records(database)[len(recorded) :][0][0] == retried.json()["run_id"]


def test_reconcile_starts_a_record_whose_run_was_never_created(
    world: World, prefect_api, database, monkeypatch
):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    # A crash right after the record committed: no Prefect run, no id.
    parameters = {"actor": "supervisor", "project": "PRJA", "source": "/deliveries/two", "dry_run": True}
    with UnitOfWork(database) as uow:
        run = service.record_run(
            uow.session,
            actor=SYSTEM,
            project_id=world.a.project_id,
            flow="ingest",
            action="flows.ingest",
            parameters=parameters,
        )
        uow.commit()
        record_id = run.id
    assert reconcile(database, older_than=timedelta(hours=1)) == []  # too young: maybe on its way
    (done,) = reconcile(database, older_than=timedelta(0))
    assert done[0].id == record_id and done[1].startswith("started as ")
    with UnitOfWork(database) as uow:
        run = uow.session.get(FlowRun, record_id)
        assert run.run_id is not None and run.parameters is None
        assert prefect_runs(prefect_api)[run.run_id] == run.start_key
    assert reconcile(database, older_than=timedelta(0)) == []


def test_a_refused_start_without_a_key_leaves_no_record(flows_client, world: World, database, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens there
    recorded = records(database)
    url = f"/projects/{world.a.project_id}/flows/ingest/runs"
    answer = flows_client.post(url, json={"source": "/deliveries/three"}, headers=world.headers("supervisor"))
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "prefect_unavailable"
    assert records(database) == recorded
