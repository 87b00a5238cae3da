"""Status workflows: each project has one for tasks and one for versions, enforced here."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bifrost_core.errors import InvalidInput, InvalidTransition
from bifrost_core.events.service import record
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import Actor
from bifrost_core.tasks.models import Task
from bifrost_core.users import permissions
from bifrost_core.versions.models import Version
from bifrost_core.workflow.models import Status, Transition
from bifrost_core.workflow.schemas import Kind, StatusIn, TransitionIn, WorkflowRead, WorkflowUpdate

DEFAULT_WORKFLOWS: dict[str, WorkflowUpdate] = {
    "task": WorkflowUpdate(
        statuses=[
            StatusIn(code="wtg", name="Waiting to start", is_initial=True),
            StatusIn(code="ready", name="Ready to start"),
            StatusIn(code="ip", name="In progress"),
            StatusIn(code="review", name="Pending review", on_new_version=True),
            StatusIn(code="retake", name="Retake"),
            StatusIn(code="approved", name="Approved", is_final=True),
            StatusIn(code="omit", name="Omitted", is_final=True),
        ],
        transitions=[
            TransitionIn(from_code=a, to_code=b)
            for a, b in [
                ("wtg", "ready"),
                ("wtg", "ip"),
                ("wtg", "omit"),
                ("ready", "ip"),
                ("ready", "omit"),
                ("ip", "review"),
                ("ip", "omit"),
                ("review", "approved"),
                ("review", "retake"),
                ("retake", "ip"),
                ("retake", "review"),
                ("approved", "retake"),
                ("omit", "wtg"),
            ]
        ],
    ),
    "version": WorkflowUpdate(
        statuses=[
            StatusIn(code="pending_review", name="Pending review", is_initial=True),
            StatusIn(code="approved", name="Approved", is_final=True),
            StatusIn(code="changes_requested", name="Changes requested"),
            StatusIn(code="on_hold", name="On hold"),
            StatusIn(code="rejected", name="Rejected", is_final=True),
        ],
        transitions=[
            TransitionIn(from_code=a, to_code=b)
            for a, b in [
                ("pending_review", "approved"),
                ("pending_review", "changes_requested"),
                ("pending_review", "on_hold"),
                ("pending_review", "rejected"),
                ("on_hold", "pending_review"),
                ("changes_requested", "pending_review"),
                ("approved", "changes_requested"),
            ]
        ],
    ),
}


def set_workflow(
    session: Session, *, actor: Actor, project_id: int, kind: Kind, workflow: WorkflowUpdate
) -> None:
    """Replace a project's statuses and transitions of one kind, and record the change."""
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "project.update", project_id)
    _replace(session, project_id=project_id, kind=kind, workflow=workflow)
    record(
        session,
        actor=actor,
        kind="workflow.updated",
        entity_type="workflow",
        entity_id=None,
        project_id=project_id,
        payload={
            "kind": kind,
            "statuses": [status.code for status in workflow.statuses],
            "transitions": [
                list(pair) for pair in sorted({(t.from_code, t.to_code) for t in workflow.transitions})
            ],
        },
    )


def _replace(session: Session, *, project_id: int, kind: Kind, workflow: WorkflowUpdate) -> None:
    codes = [status.code for status in workflow.statuses]
    if len(set(codes)) != len(codes):
        raise InvalidInput(f"{kind} workflow: status codes must be unique")
    if sum(status.is_initial for status in workflow.statuses) != 1:
        raise InvalidInput(f"{kind} workflow: exactly one status must be initial")
    moved_to = [status.code for status in workflow.statuses if status.on_new_version]
    if moved_to and kind != "task":
        raise InvalidInput(f"{kind} workflow: only a task status can be the one a new version moves to")
    if len(moved_to) > 1:
        raise InvalidInput(f"{kind} workflow: at most one status is the one a new version moves to")
    for transition in workflow.transitions:
        for code in (transition.from_code, transition.to_code):
            if code not in codes:
                raise InvalidInput(f"{kind} workflow: transition names unknown status {code!r}")
    # A status still held by a task or version cannot go: it would be stranded with no way out.
    model = Task if kind == "task" else Version
    in_use = set(session.scalars(select(model.status).where(model.project_id == project_id).distinct()))
    dropped = sorted(in_use - set(codes))
    if dropped:
        raise InvalidInput(
            f"{kind} workflow: status {dropped[0]!r} is still in use by {kind}s of the project"
        )
    session.execute(delete(Status).where(Status.project_id == project_id, Status.kind == kind))
    session.execute(delete(Transition).where(Transition.project_id == project_id, Transition.kind == kind))
    session.add_all(
        Status(project_id=project_id, kind=kind, sort_order=index, **status.model_dump())
        for index, status in enumerate(workflow.statuses)
    )
    session.add_all(
        Transition(project_id=project_id, kind=kind, **transition.model_dump())
        for transition in {(t.from_code, t.to_code): t for t in workflow.transitions}.values()
    )
    session.flush()


def install_defaults(session: Session, *, project_id: int) -> None:
    """A new project's workflows (its creation is the event)."""
    for kind, workflow in DEFAULT_WORKFLOWS.items():
        _replace(session, project_id=project_id, kind=kind, workflow=workflow)


def get_workflow(session: Session, *, project_id: int, kind: Kind) -> WorkflowRead:
    statuses = session.scalars(
        select(Status).where(Status.project_id == project_id, Status.kind == kind).order_by(Status.sort_order)
    ).all()
    transitions = session.scalars(
        select(Transition)
        .where(Transition.project_id == project_id, Transition.kind == kind)
        .order_by(Transition.id)
    ).all()
    return WorkflowRead(kind=kind, statuses=statuses, transitions=transitions)


def initial_status(session: Session, *, project_id: int, kind: Kind) -> str:
    code = session.scalar(
        select(Status.code).where(Status.project_id == project_id, Status.kind == kind, Status.is_initial)
    )
    if code is None:
        raise InvalidInput(f"the project has no initial {kind} status")
    return code


def check_status(session: Session, *, project_id: int, kind: Kind, code: str) -> None:
    known = session.scalar(
        select(Status.id).where(Status.project_id == project_id, Status.kind == kind, Status.code == code)
    )
    if known is None:
        raise InvalidInput(f"unknown {kind} status {code!r}")


def check_transition(session: Session, *, project_id: int, kind: Kind, from_code: str, to_code: str) -> None:
    if from_code == to_code:
        return
    check_status(session, project_id=project_id, kind=kind, code=to_code)
    allowed = session.scalar(
        select(Transition.id).where(
            Transition.project_id == project_id,
            Transition.kind == kind,
            Transition.from_code == from_code,
            Transition.to_code == to_code,
        )
    )
    if allowed is None:
        raise InvalidTransition(f"{kind} status cannot go from {from_code!r} to {to_code!r}")


def follow_new_version(session: Session, *, actor: Actor, task: Task, version: Version) -> None:
    """A new version moves its task to the project's `on_new_version` status (the default
    workflow's `review`), as ShotGrid and Kitsu users expect: the publish is the artist's
    request for review, so it needs no transition of its own nor `tasks.status`. A task in
    a final status (approved, omitted) stays there, and so does every task of a project
    whose workflow marks no such status."""
    target = session.scalar(
        select(Status.code).where(
            Status.project_id == task.project_id, Status.kind == "task", Status.on_new_version
        )
    )
    if target is None or target == task.status:
        return
    final = session.scalar(
        select(Status.is_final).where(
            Status.project_id == task.project_id, Status.kind == "task", Status.code == task.status
        )
    )
    if final:
        return
    before = task.status
    task.status = target
    session.flush()
    record(
        session,
        actor=actor,
        kind="task.updated",
        entity_type="task",
        entity_id=task.id,
        project_id=task.project_id,
        payload={"status": [before, target], "version_id": version.id},
    )
