"""Recording the flow runs started for a project (the run itself lives in Prefect)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bifrost_core.events.service import record
from bifrost_core.runs.models import FlowRun
from bifrost_core.runs.repository import FlowRunRepository
from bifrost_core.scope import Actor


def record_run(session: Session, *, actor: Actor, project_id: int, flow: str, run_id: str) -> FlowRun:
    run = FlowRunRepository(session, actor).add(
        FlowRun(run_id=run_id, project_id=project_id, flow=flow, created_by=actor.user_id)
    )
    record(
        session,
        actor=actor,
        kind="flow_run.started",
        entity_type="flow_run",
        entity_id=run.id,
        project_id=project_id,
        payload={"flow": flow, "run_id": run_id},
    )
    return run
