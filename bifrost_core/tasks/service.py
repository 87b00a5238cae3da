"""Rules for task types and tasks: one entity per task, assignees from the project, workflow."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.assets.repository import AssetRepository
from bifrost_core.db.guards import ensure_absent, get_or_create
from bifrost_core.db.repository import valid_id
from bifrost_core.errors import InvalidInput
from bifrost_core.events.service import record, record_created
from bifrost_core.projects.repository import ProjectRepository, ShotRepository
from bifrost_core.scope import Actor
from bifrost_core.tasks.models import Task, TaskType
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskTypeCreate, TaskUpdate
from bifrost_core.users.models import ProjectMembership, User
from bifrost_core.workflow import service as workflow


def create_task_type(session: Session, *, actor: Actor, project_id: int, data: TaskTypeCreate) -> TaskType:
    ProjectRepository(session, actor).get(project_id)
    ensure_absent(
        session,
        TaskType.project_id == project_id,
        TaskType.code == data.code,
        message=f"task type {data.code!r} already exists",
    )
    task_type = TaskTypeRepository(session, actor).add(TaskType(project_id=project_id, **data.model_dump()))
    record_created(
        session,
        actor=actor,
        entity_type="task_type",
        entity=task_type,
        project_id=project_id,
        payload={"code": task_type.code},
    )
    return task_type


def task_type_for(session: Session, *, actor: Actor, project_id: int, code: str) -> TaskType:
    # Concurrent ingests may each need the same new task type: get_or_create lets both win.
    return get_or_create(
        session,
        lambda: TaskTypeRepository(session, actor).first(
            TaskType.project_id == project_id, TaskType.code == code
        ),
        lambda: create_task_type(
            session, actor=actor, project_id=project_id, data=TaskTypeCreate(code=code, name=code)
        ),
    )


def _assignees(session: Session, project_id: int, user_ids: list[int]) -> list[User]:
    if not user_ids:
        return []
    users = session.scalars(
        select(User)
        .outerjoin(
            ProjectMembership,
            (ProjectMembership.user_id == User.id) & (ProjectMembership.project_id == project_id),
        )
        .where(
            User.id.in_([i for i in user_ids if valid_id(i)]),
            (ProjectMembership.id.is_not(None)) | User.is_admin,
        )
    ).all()
    missing = sorted(set(user_ids) - {user.id for user in users})
    if missing:
        raise InvalidInput(f"users {missing} are not members of the project")
    return list(users)


def create_task(session: Session, *, actor: Actor, data: TaskCreate) -> Task:
    if data.shot_id is not None:
        entity = ShotRepository(session, actor).get(data.shot_id)
        label, same_entity = "shot", Task.shot_id == data.shot_id
    else:
        entity = AssetRepository(session, actor).get(data.asset_id)  # type: ignore[arg-type]
        label, same_entity = "asset", Task.asset_id == data.asset_id
    project_id = entity.project_id
    name = data.name or data.task_type
    ensure_absent(
        session,
        same_entity,
        Task.name == name,
        message=f"task {name!r} already exists on {label} {entity.code!r}",
    )
    task_type = task_type_for(session, actor=actor, project_id=project_id, code=data.task_type)
    task = Task(
        project_id=project_id,
        task_type_id=task_type.id,
        shot_id=data.shot_id,
        asset_id=data.asset_id,
        name=name,
        due_date=data.due_date,
        status=workflow.initial_status(session, project_id=project_id, kind="task"),
        assignees=_assignees(session, project_id, data.assignee_ids),
    )
    TaskRepository(session, actor).add(task)
    record_created(
        session,
        actor=actor,
        entity_type="task",
        entity=task,
        project_id=project_id,
        payload={"name": name, label: entity.code},
    )
    return task


def update_task(session: Session, *, actor: Actor, task_id: int, data: TaskUpdate) -> Task:
    task = TaskRepository(session, actor).get(task_id)
    payload: dict[str, object] = {}
    if data.status is not None and data.status != task.status:
        workflow.check_transition(
            session, project_id=task.project_id, kind="task", from_code=task.status, to_code=data.status
        )
        payload["status"] = [task.status, data.status]
        task.status = data.status
    if "due_date" in data.model_fields_set:
        task.due_date = data.due_date
        payload["due_date"] = str(data.due_date)
    if data.assignee_ids is not None:
        task.assignees = _assignees(session, task.project_id, data.assignee_ids)
        payload["assignee_ids"] = sorted(data.assignee_ids)
    session.flush()
    record(
        session,
        actor=actor,
        kind="task.updated",
        entity_type="task",
        entity_id=task.id,
        project_id=task.project_id,
        payload=payload,
    )
    return task
