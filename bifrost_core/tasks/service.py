"""Rules for task types and tasks: one entity per task, assignees from the project, workflow."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset
from bifrost_core.assets.repository import AssetRepository
from bifrost_core.db.guards import get_or_create
from bifrost_core.db.repository import valid_id
from bifrost_core.errors import InvalidInput
from bifrost_core.events.service import record_updated
from bifrost_core.projects.models import Shot
from bifrost_core.projects.repository import ProjectRepository, ShotRepository
from bifrost_core.scope import Actor
from bifrost_core.tasks.models import Task, TaskType
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskTypeCreate, TaskUpdate
from bifrost_core.users import permissions
from bifrost_core.users.models import ProjectMembership, User
from bifrost_core.workflow import service as workflow
from bifrost_core.writes import add_new, add_recorded, refuse_duplicate


def create_task_type(session: Session, *, actor: Actor, project_id: int, data: TaskTypeCreate) -> TaskType:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "tasks.write", project_id)
    return _add_task_type(session, actor, project_id, data)


def _add_task_type(session: Session, actor: Actor, project_id: int, data: TaskTypeCreate) -> TaskType:
    return add_new(TaskTypeRepository(session, actor), TaskType(project_id=project_id, **data.model_dump()))


def _task_type_for(session: Session, actor: Actor, project_id: int, code: str) -> TaskType:
    # Concurrent ingests may each need the same new task type: get_or_create lets both win.
    return get_or_create(
        session,
        lambda: TaskTypeRepository(session, actor).first(
            TaskType.project_id == project_id, TaskType.code == code
        ),
        lambda: _add_task_type(session, actor, project_id, TaskTypeCreate(code=code, name=code)),
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
    entity, label = _entity(session, actor, data)
    permissions.require(actor, "tasks.write", entity.project_id)
    return _add_task(session, actor, data, entity, label)


def create_publish_task(session: Session, *, actor: Actor, data: TaskCreate) -> Task:
    """A task made for a publish to go to (ingest and publish flows, when the delivery names a
    task the entity lacks): publishing covers making it, so it takes `versions.create`, not
    `tasks.write` (an artist publishes, a coordinator plans)."""
    entity, label = _entity(session, actor, data)
    permissions.require(actor, "versions.create", entity.project_id)
    return _add_task(session, actor, data, entity, label)


def _entity(session: Session, actor: Actor, data: TaskCreate) -> tuple[Shot | Asset, str]:
    if data.shot_id is not None:
        return ShotRepository(session, actor).get(data.shot_id), "shot"
    return AssetRepository(session, actor).get(data.asset_id), "asset"  # type: ignore[arg-type]


def _add_task(session: Session, actor: Actor, data: TaskCreate, entity: Shot | Asset, label: str) -> Task:
    project_id = entity.project_id
    name = data.name or data.task_type
    repository = TaskRepository(session, actor)
    refuse_duplicate(
        repository,
        {f"{label}_id": entity.id, "name": name},
        message=f"task {name!r} already exists on {label} {entity.code!r}",
    )
    task = Task(
        project_id=project_id,
        task_type_id=_task_type_for(session, actor, project_id, data.task_type).id,
        shot_id=data.shot_id,
        asset_id=data.asset_id,
        name=name,
        due_date=data.due_date,
        status=workflow.initial_status(session, project_id=project_id, kind="task"),
        assignees=_assignees(session, project_id, data.assignee_ids),
    )
    return add_recorded(repository, task, {"name": name, label: entity.code})


def update_task(session: Session, *, actor: Actor, task_id: int, data: TaskUpdate) -> Task:
    task = TaskRepository(session, actor).get(task_id)
    # Moving a task along its workflow is an artist's job (on their own tasks); re-planning it is not.
    action = "tasks.status" if data.model_fields_set <= {"status"} else "tasks.write"
    permissions.require_on_task(actor, action, task.project_id, [user.id for user in task.assignees])
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
    record_updated(
        session, actor=actor, entity_type="task", entity=task, project_id=task.project_id, payload=payload
    )
    return task
