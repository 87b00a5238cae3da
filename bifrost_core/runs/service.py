"""Bifrost's records of flow runs (the runs themselves live in Prefect).

Starting a run keeps the outbox rule: `record_run` writes a pending record, the caller
commits, then creates the Prefect run with `prefect_key(run)` as its idempotency key (Prefect
creates one run per deployment and key, however often it is asked) and stores its id with
`started`. A record whose start was lost (a crash or a failed commit in between) is found
by `pending` and started again with the same key: it can never become two runs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from bifrost_core.db.base import utcnow
from bifrost_core.events.service import record
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.runs.models import FlowRun
from bifrost_core.runs.repository import FlowRunRepository
from bifrost_core.scope import Actor
from bifrost_core.users import permissions


def prefect_key(run: FlowRun) -> str:
    """The idempotency key of the Prefect run this record asks for."""
    return run.start_key


def record_run(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    flow: str,
    action: str,
    parameters: dict[str, Any],
    request_key: str | None = None,
) -> FlowRun:
    """The pending record of a run to start, if `actor` may (`action`, the flow's permission);
    the one already made for `request_key`, if any (a retried request resumes it)."""
    ProjectRepository(session, actor).get(project_id)  # a project the actor cannot see: 404
    permissions.require(actor, action, project_id)
    repository = FlowRunRepository(session, actor)
    if request_key is not None:
        found = repository.first(FlowRun.request_key == request_key)
        if found is not None:
            return found
    return repository.add(
        FlowRun(
            project_id=project_id,
            flow=flow,
            parameters=parameters,
            request_key=request_key,
            start_key=_new_key(),
            created_by=actor.user_id,
        )
    )


def started(session: Session, *, actor: Actor, run: FlowRun, run_id: str) -> None:
    """Prefect created the run: store its id (once, whoever gets here first: the starter, a
    reconcile or the flow itself) and record the event."""
    done = session.execute(
        update(FlowRun)
        .where(FlowRun.id == run.id, FlowRun.run_id.is_(None))
        .values(run_id=run_id, parameters=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(run)
    if done:
        _record_started(session, actor, run)


def attach(
    session: Session, *, actor: Actor, project_id: int, flow: str, run_id: str, key: str | None
) -> None:
    """A flow beginning run `run_id` makes sure Bifrost knows it: the pending record its
    idempotency `key` names gets the id, or (a run started in the Prefect UI or CLI) a new
    record is made. Idempotent: a retried flow run finds its record."""
    repository = FlowRunRepository(session, actor)
    if repository.first(FlowRun.run_id == run_id) is not None:
        return
    if key is not None:
        run = repository.first(FlowRun.start_key == key)
        if run is not None:
            started(session, actor=actor, run=run, run_id=run_id)
            return
    run = repository.add(
        FlowRun(
            project_id=project_id,
            flow=flow,
            run_id=run_id,
            start_key=_new_key(),
            created_by=actor.user_id,
        )
    )
    _record_started(session, actor, run)


def pending(session: Session, *, actor: Actor, older_than: timedelta) -> list[FlowRun]:
    """Records never started in Prefect, made more than `older_than` ago (younger ones may
    still be on their way), oldest first."""
    repository = FlowRunRepository(session, actor)
    return repository.list(FlowRun.run_id.is_(None), FlowRun.created_at < utcnow() - older_than)


def _new_key() -> str:
    # Unique across databases too: several Bifrost databases may share one Prefect server.
    return f"bifrost-{uuid.uuid4()}"


def _record_started(session: Session, actor: Actor, run: FlowRun) -> None:
    record(
        session,
        actor=actor,
        kind="flow_run.started",
        entity_type="flow_run",
        entity_id=run.id,
        project_id=run.project_id,
        payload={"flow": run.flow, "run_id": run.run_id},
    )
