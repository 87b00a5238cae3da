"""Task types, tasks, and the per-project status workflows (statuses and transitions)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api import cached
from api.deps import CtxDep
from api.params import After, Id, Limit, NameFilter, OptionalId, Page, Status, UpdatedSince, any_case, page
from bifrost_core.tasks import service
from bifrost_core.tasks.models import Task, TaskType
from bifrost_core.tasks.repository import TaskRepository, TaskTypeRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskRead, TaskTypeCreate, TaskTypeRead, TaskUpdate
from bifrost_core.users.models import User
from bifrost_core.workflow import service as workflow
from bifrost_core.workflow.schemas import Kind, WorkflowRead, WorkflowUpdate

router = APIRouter()


@router.get("/projects/{project_id}/task-types", response_model=Page[TaskTypeRead], tags=["tasks"])
def list_task_types(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    ctx.project(project_id, "tasks.read")
    rows = TaskTypeRepository(ctx.session, ctx.actor).list(
        TaskType.project_id == project_id, after=after, limit=limit
    )
    return ctx.respond(page(TaskTypeRead, rows, limit))


@router.post(
    "/projects/{project_id}/task-types", response_model=TaskTypeRead, status_code=201, tags=["tasks"]
)
def create_task_type(ctx: CtxDep, project_id: Id, data: TaskTypeCreate) -> Response:
    task_type = service.create_task_type(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(TaskTypeRead.model_validate(task_type), 201)


@router.get("/projects/{project_id}/tasks", response_model=Page[TaskRead], tags=["tasks"])
def list_tasks(
    ctx: CtxDep,
    project_id: Id,
    name: NameFilter = None,
    task_type_id: OptionalId = None,
    shot_id: OptionalId = None,
    asset_id: OptionalId = None,
    assignee_id: OptionalId = None,
    status: Status = None,
    updated_since: UpdatedSince = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    ctx.project(project_id, "tasks.read")
    conditions = [Task.project_id == project_id, *any_case(Task.name, name)]
    if assignee_id is not None:
        conditions.append(Task.assignees.any(User.id == assignee_id))
    if updated_since is not None:
        conditions.append(Task.updated_at >= updated_since)
    filters = {"task_type_id": task_type_id, "shot_id": shot_id, "asset_id": asset_id, "status": status}
    rows = TaskRepository(ctx.session, ctx.actor).list(*conditions, filters=filters, after=after, limit=limit)
    return ctx.respond(page(TaskRead, rows, limit))


@router.post("/tasks", response_model=TaskRead, status_code=201, tags=["tasks"])
def create_task(ctx: CtxDep, data: TaskCreate) -> Response:
    task = service.create_task(ctx.session, actor=ctx.actor, data=data)
    return ctx.done(TaskRead.model_validate(task), 201)


@router.get("/tasks/{task_id}", response_model=TaskRead, tags=["tasks"])
def get_task(ctx: CtxDep, task_id: Id) -> Response:
    return cached.read(
        ctx,
        "task",
        task_id,
        action="tasks.read",
        schema=TaskRead,
        load=lambda: TaskRepository(ctx.session, ctx.actor).get(task_id),
    )


@router.patch("/tasks/{task_id}", response_model=TaskRead, tags=["tasks"])
def update_task(ctx: CtxDep, task_id: Id, data: TaskUpdate) -> Response:
    task = service.update_task(ctx.session, actor=ctx.actor, task_id=task_id, data=data)
    return ctx.done(TaskRead.model_validate(task))


@router.get("/projects/{project_id}/workflows/{kind}", response_model=WorkflowRead, tags=["workflow"])
def get_workflow(ctx: CtxDep, project_id: Id, kind: Kind) -> Response:
    ctx.project(project_id, "production.read")
    return ctx.respond(workflow.get_workflow(ctx.session, project_id=project_id, kind=kind))


@router.put("/projects/{project_id}/workflows/{kind}", response_model=WorkflowRead, tags=["workflow"])
def set_workflow(ctx: CtxDep, project_id: Id, kind: Kind, data: WorkflowUpdate) -> Response:
    """Replace the statuses and transitions of one kind; exactly one status is initial."""
    workflow.set_workflow(ctx.session, actor=ctx.actor, project_id=project_id, kind=kind, workflow=data)
    return ctx.done(workflow.get_workflow(ctx.session, project_id=project_id, kind=kind))
