"""Bifrost's records of flow runs: recorded pending before Prefect is asked, found again by
the request's key, and completed once, whoever gets there first (the starter, a reconcile,
or the flow itself when it begins)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select

from bifrost_core.events.models import Event
from bifrost_core.runs import service
from bifrost_core.runs.models import FlowRun
from bifrost_core.scope import SYSTEM


def started_events(session) -> int:
    return session.scalar(select(func.count()).where(Event.kind == "flow_run.started"))


def test_a_pending_record_is_found_again_and_started_once(session, build) -> None:
    project = build.project()
    parameters = {"actor": "td", "project": "P1", "source": "/d"}

    def record():  # the same request twice: the second finds the first's record
        return service.record_run(
            session,
            actor=SYSTEM,
            project_id=project.id,
            flow="ingest",
            action="flows.ingest",
            parameters=parameters,
            request_key="1:k",
        )

    run, again = record(), record()
    assert again.id == run.id and run.run_id is None
    assert service.prefect_key(run).startswith("bifrost-")
    assert service.pending(session, actor=SYSTEM, older_than=timedelta(0)) == [run]

    prefect_id = str(uuid.uuid4())
    # The flow began first (it names its record by the key it was created with), then the starter.
    service.attach(
        session, actor=SYSTEM, project_id=project.id, flow="ingest", run_id=prefect_id, key=run.start_key
    )
    service.started(session, actor=SYSTEM, run=run, run_id=prefect_id)
    assert (run.run_id, run.parameters) == (prefect_id, None)
    assert started_events(session) == 1
    assert service.pending(session, actor=SYSTEM, older_than=timedelta(0)) == []


def test_a_run_started_elsewhere_is_recorded_once_by_its_flow(session, build) -> None:
    project = build.project()
    prefect_id = str(uuid.uuid4())
    for _ in range(2):  # a retried flow run begins again
        service.attach(
            session, actor=SYSTEM, project_id=project.id, flow="ingest", run_id=prefect_id, key=None
        )
    assert session.scalar(select(func.count()).select_from(FlowRun)) == 1
    assert started_events(session) == 1
