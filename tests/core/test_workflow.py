"""Per-project status workflows for tasks and versions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bifrost_core.errors import InvalidInput, InvalidTransition
from bifrost_core.events.models import Event
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskUpdate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate, VersionUpdate
from bifrost_core.workflow import service as workflow
from bifrost_core.workflow.schemas import StatusIn, TransitionIn, WorkflowUpdate


def test_default_workflows(session, build):
    project = build.project("P1")
    task_flow = workflow.get_workflow(session, project_id=project.id, kind="task")
    assert [s.code for s in task_flow.statuses] == [
        "wtg",
        "ready",
        "ip",
        "review",
        "retake",
        "approved",
        "omit",
    ]
    assert workflow.initial_status(session, project_id=project.id, kind="task") == "wtg"
    assert workflow.initial_status(session, project_id=project.id, kind="version") == "pending_review"
    version_flow = workflow.get_workflow(session, project_id=project.id, kind="version")
    assert {(t.from_code, t.to_code) for t in version_flow.transitions} >= {("pending_review", "approved")}
    assert {s.code for s in version_flow.statuses if s.is_final} == {"approved", "rejected"}


@pytest.mark.parametrize(
    ("kind", "from_code", "to_code"),
    [("task", "wtg", "ip"), ("task", "review", "retake"), ("version", "pending_review", "approved")],
)
def test_allowed_transitions(session, build, kind, from_code, to_code):
    project = build.project("P1")
    workflow.check_transition(session, project_id=project.id, kind=kind, from_code=from_code, to_code=to_code)


@pytest.mark.parametrize(
    ("kind", "from_code", "to_code"),
    [("task", "wtg", "approved"), ("task", "approved", "ip"), ("version", "rejected", "approved")],
)
def test_disallowed_transitions(session, build, kind, from_code, to_code):
    project = build.project("P1")
    with pytest.raises(InvalidTransition):
        workflow.check_transition(
            session, project_id=project.id, kind=kind, from_code=from_code, to_code=to_code
        )


def test_version_status_follows_the_workflow(session, build):
    _, _, task = build.shot_task()
    version = versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    assert version.status == "pending_review"
    versions.update_version(
        session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(status="rejected")
    )
    with pytest.raises(InvalidTransition, match="version status cannot go from 'rejected' to 'approved'"):
        versions.update_version(
            session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(status="approved")
        )
    with pytest.raises(InvalidInput, match="unknown version status"):
        versions.update_version(
            session, actor=SYSTEM, version_id=version.id, data=VersionUpdate(status="wtg")
        )
    assert version.status == "rejected"


def _simple(*codes: str, transitions: list[tuple[str, str]]) -> WorkflowUpdate:
    return WorkflowUpdate(
        statuses=[StatusIn(code=code, name=code.title(), is_initial=i == 0) for i, code in enumerate(codes)],
        transitions=[TransitionIn(from_code=a, to_code=b) for a, b in transitions],
    )


def test_a_workflow_change_is_an_event_and_a_new_project_s_defaults_are_not(session, build):
    project = build.project("P1")
    custom = _simple("todo", "doing", "done", transitions=[("doing", "done"), ("todo", "doing")])
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=custom)
    session.flush()
    events = session.scalars(select(Event).where(Event.project_id == project.id).order_by(Event.id)).all()
    assert [event.kind for event in events] == ["project.created", "workflow.updated"]
    assert (events[1].entity_type, events[1].entity_id) == ("workflow", None)
    assert events[1].payload == {
        "kind": "task",
        "statuses": ["todo", "doing", "done"],
        "transitions": [["doing", "done"], ["todo", "doing"]],
    }


def test_custom_workflow_replaces_the_default_for_one_project(session, build):
    project = build.project("P1")
    shot = build.shot(build.sequence(project))  # no task yet: every default status is free to go
    other_project, other_shot, _ = build.shot_task("P2")
    custom = _simple("todo", "doing", "done", transitions=[("todo", "doing"), ("doing", "done")])
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=custom)
    assert [s.code for s in workflow.get_workflow(session, project_id=project.id, kind="task").statuses] == [
        "todo",
        "doing",
        "done",
    ]
    fresh = build.task(shot=shot, task_type="light")
    assert fresh.status == "todo"
    tasks.update_task(session, actor=SYSTEM, task_id=fresh.id, data=TaskUpdate(status="doing"))
    with pytest.raises(InvalidTransition):
        tasks.update_task(session, actor=SYSTEM, task_id=fresh.id, data=TaskUpdate(status="todo"))
    with pytest.raises(InvalidInput, match="unknown task status 'ip'"):
        tasks.update_task(session, actor=SYSTEM, task_id=fresh.id, data=TaskUpdate(status="ip"))
    # The other project keeps the default workflow.
    assert build.task(shot=other_shot, task_type="light").status == "wtg"
    assert workflow.initial_status(session, project_id=other_project.id, kind="task") == "wtg"


@pytest.mark.parametrize(
    ("statuses", "transitions", "message"),
    [
        ([("a", True), ("a", False)], [], "status codes must be unique"),
        ([("a", False), ("b", False)], [], "exactly one status must be initial"),
        ([("a", True), ("b", True)], [], "exactly one status must be initial"),
        ([("a", True), ("b", False)], [("a", "c")], "unknown status 'c'"),
    ],
)
def test_set_workflow_validates(session, build, statuses, transitions, message):
    project = build.project("P1")
    update = WorkflowUpdate(
        statuses=[StatusIn(code=code, name=code, is_initial=initial) for code, initial in statuses],
        transitions=[TransitionIn(from_code=a, to_code=b) for a, b in transitions],
    )
    with pytest.raises(InvalidInput, match=message):
        workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=update)
    # A refused workflow leaves the old one in place.
    assert workflow.initial_status(session, project_id=project.id, kind="task") == "wtg"


def test_workflow_input_is_validated():
    with pytest.raises(ValidationError):
        WorkflowUpdate(statuses=[])
    with pytest.raises(ValidationError):
        StatusIn(code="x" * 33, name="too long for the 32-character column")
    with pytest.raises(ValidationError):
        TransitionIn(from_code="a", to_code="y" * 33)


def test_duplicate_transitions_are_stored_once(session, build):
    project = build.project("P1")
    update = _simple("a", "b", transitions=[("a", "b"), ("a", "b")])
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="version", workflow=update)
    read = workflow.get_workflow(session, project_id=project.id, kind="version")
    assert [(t.from_code, t.to_code) for t in read.transitions] == [("a", "b")]


def test_a_status_in_use_cannot_be_removed(session, build):
    project, _, task = build.shot_task()
    versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))  # task: review
    for status in ("retake", "ip"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status=status))
    without_ip = _simple("wtg", "done", transitions=[("wtg", "done")])
    with pytest.raises(InvalidInput, match="status 'ip' is still in use by tasks"):
        workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=without_ip)
    with pytest.raises(InvalidInput, match="status 'pending_review' is still in use by versions"):
        workflow.set_workflow(
            session, actor=SYSTEM, project_id=project.id, kind="version", workflow=without_ip
        )
    # Keeping the used status is fine, and the old workflow stayed in place until then.
    assert workflow.initial_status(session, project_id=project.id, kind="task") == "wtg"
    keeps_ip = _simple("wtg", "ip", "done", transitions=[("ip", "done")])
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=keeps_ip)
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="done"))


def test_a_new_version_moves_its_task_to_review(session, build):
    project, _, task = build.shot_task()
    assert task.status == "wtg"
    version = versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    assert task.status == "review"
    moved = session.scalars(
        select(Event).where(Event.kind == "task.updated", Event.entity_id == task.id)
    ).one()
    assert moved.payload == {"status": ["wtg", "review"], "version_id": version.id}
    # Already there: nothing moves, no event.
    versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    assert len(session.scalars(select(Event).where(Event.kind == "task.updated")).all()) == 1
    read = workflow.get_workflow(session, project_id=project.id, kind="task")
    assert [s.code for s in read.statuses if s.on_new_version] == ["review"]


def test_a_task_in_a_final_status_stays_there(session, build):
    _, _, task = build.shot_task()
    for status in ("ip", "review", "approved"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status=status))
    versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    assert task.status == "approved"


def test_a_project_chooses_the_status_or_none(session, build):
    project = build.project("P1")
    shot = build.shot(build.sequence(project))
    custom = WorkflowUpdate(
        statuses=[
            StatusIn(code="todo", name="To do", is_initial=True),
            StatusIn(code="dailies", name="In dailies", on_new_version=True),
        ],
        transitions=[TransitionIn(from_code="todo", to_code="dailies")],
    )
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=custom)
    task = build.task(shot=shot)
    versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=task.id))
    assert task.status == "dailies"
    # Off: no status marked.
    off = _simple("todo", "dailies", transitions=[("todo", "dailies")])
    workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind="task", workflow=off)
    other = build.task(shot=shot, task_type="light")
    versions.create_version(session, actor=SYSTEM, data=VersionCreate(task_id=other.id))
    assert other.status == "todo"


@pytest.mark.parametrize(
    ("kind", "marked", "message"),
    [
        ("task", ["a", "b"], "at most one status is the one a new version moves to"),
        ("version", ["b"], "only a task status can be the one a new version moves to"),
    ],
)
def test_the_status_a_new_version_moves_to_is_checked(session, build, kind, marked, message):
    project = build.project("P1")
    update = WorkflowUpdate(
        statuses=[
            StatusIn(code=code, name=code, is_initial=code == "a", on_new_version=code in marked)
            for code in ("a", "b")
        ]
    )
    with pytest.raises(InvalidInput, match=message):
        workflow.set_workflow(session, actor=SYSTEM, project_id=project.id, kind=kind, workflow=update)
