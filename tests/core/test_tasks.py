"""Task types and tasks: one entity per task, assignees from the project, workflow."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bifrost_core.errors import Conflict, InvalidInput, InvalidTransition, PermissionDenied
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskRead, TaskTypeCreate, TaskUpdate


def test_task_on_a_shot_gets_type_name_and_initial_status(session, build):
    project = build.project("P1")
    shot = build.shot(build.sequence(project))
    task = build.task(shot=shot, task_type="comp", due_date=date(2027, 1, 15))
    read = TaskRead.model_validate(task)
    assert (read.shot_id, read.asset_id, read.project_id) == (shot.id, None, project.id)
    assert (read.name, read.status, read.due_date) == ("comp", "wtg", date(2027, 1, 15))
    assert TaskTypeRepository(session).get(read.task_type_id).code == "comp"


def test_task_on_an_asset_and_named_tasks_share_a_type(session, build):
    project = build.project("P1")
    asset = build.asset(project)
    model = build.task(asset=asset, task_type="model")
    model_hi = build.task(asset=asset, task_type="model", name="model_hi")
    assert (model.asset_id, model.shot_id) == (asset.id, None)
    assert model.task_type_id == model_hi.task_type_id
    assert len(TaskTypeRepository(session).list()) == 1


@pytest.mark.parametrize("entities", [{}, {"shot_id": 1, "asset_id": 2}])
def test_task_needs_exactly_one_entity(entities):
    with pytest.raises(ValidationError, match="exactly one shot or one asset"):
        TaskCreate(task_type="comp", **entities)


def test_database_refuses_a_task_without_entity(session, build):
    project = build.project("P1")
    task_type = tasks.create_task_type(
        session, actor=SYSTEM, project_id=project.id, data=TaskTypeCreate(code="x")
    )
    session.add(Task(project_id=project.id, task_type_id=task_type.id, name="x", status="wtg"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_duplicate_task_name_conflicts_per_entity(session, build):
    project = build.project("P1")
    sequence = build.sequence(project)
    first, second = build.shot(sequence, "sh010"), build.shot(sequence, "sh020")
    build.task(shot=first)
    with pytest.raises(Conflict, match="task 'comp' already exists on shot 'sh010'"):
        build.task(shot=first)
    assert build.task(shot=second).shot_id == second.id
    with pytest.raises(Conflict, match="task type 'comp' already exists"):
        tasks.create_task_type(session, actor=SYSTEM, project_id=project.id, data=TaskTypeCreate(code="comp"))


def test_assignees_must_be_members_or_admins(session, build):
    project, other = build.project("P1"), build.project("P2")
    shot = build.shot(build.sequence(project))
    member, admin, outsider = build.user("ann"), build.user("root", is_admin=True), build.user("olaf")
    build.member(project, member)
    build.member(other, outsider)  # a member elsewhere is still an outsider here
    task = build.task(shot=shot, assignee_ids=[member.id, admin.id])
    assert TaskRead.model_validate(task).assignee_ids == sorted([member.id, admin.id])
    with pytest.raises(InvalidInput, match=rf"users \[{outsider.id}\] are not members"):
        build.task(shot=shot, task_type="light", assignee_ids=[member.id, outsider.id])
    assert session.scalar(select(func.count(Task.id))) == 1


def test_update_task_replaces_assignees_and_checks_them(session, build):
    project = build.project("P1")
    task = build.task(shot=build.shot(build.sequence(project)))
    ann, bob = build.user("ann"), build.user("bob")
    build.member(project, ann)
    build.member(project, bob, "supervisor")
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(assignee_ids=[ann.id]))
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(assignee_ids=[bob.id]))
    assert [user.id for user in TaskRepository(session).get(task.id).assignees] == [bob.id]
    with pytest.raises(InvalidInput, match="not members"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(assignee_ids=[10**6]))


def test_task_status_follows_the_workflow(session, build):
    task = build.task(shot=build.shot(build.sequence(build.project("P1"))))
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="ip"))
    with pytest.raises(InvalidTransition, match="task status cannot go from 'ip' to 'approved'"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="approved"))
    with pytest.raises(InvalidInput, match="unknown task status 'done'"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="done"))
    for status in ("review", "approved"):
        tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status=status))
    assert TaskRepository(session).get(task.id).status == "approved"


def test_update_task_due_date_set_and_clear(session, build):
    task = build.task(shot=build.shot(build.sequence(build.project("P1"))), due_date=date(2027, 1, 1))
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(status="ready"))
    assert task.due_date == date(2027, 1, 1)  # not sent, so not touched
    tasks.update_task(session, actor=SYSTEM, task_id=task.id, data=TaskUpdate(due_date=None))
    assert (task.due_date, task.status) == (None, "ready")


def test_assignee_ids_beyond_64_bits_are_unknown_users(session, build):
    shot = build.shot(build.sequence(build.project("P1")))
    with pytest.raises(InvalidInput, match="not members"):
        build.task(shot=shot, assignee_ids=[2**70])


def test_a_publish_may_make_its_task_where_planning_may_not(session, build):
    """An artist publishing to a task the shot lacks gets it made (ingest and publish flows),
    but may not create tasks as such: that is planning (tasks.write)."""
    project = build.project()
    shot = build.shot(build.sequence(project))
    user = build.user("ann")
    build.member(project, user, "artist")
    artist = build.actor(user)
    data = TaskCreate(task_type="fx", shot_id=shot.id)
    with pytest.raises(PermissionDenied):
        tasks.create_task(session, actor=artist, data=data)
    assert tasks.create_publish_task(session, actor=artist, data=data).name == "fx"
    build.member(project, user, "client")
    with pytest.raises(PermissionDenied):
        tasks.create_publish_task(
            session, actor=build.actor(user), data=TaskCreate(task_type="lgt", shot_id=shot.id)
        )
