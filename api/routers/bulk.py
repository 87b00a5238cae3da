"""Many creates and updates in one transaction: all of them happen, or none."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Ctx, CtxDep
from api.params import MAX_ID, Id
from api.routers.tasks import require_task_update
from bifrost_core.assets import service as assets
from bifrost_core.assets.repository import AssetRepository
from bifrost_core.assets.schemas import AssetCreate, AssetUpdate, CastingCreate
from bifrost_core.errors import BifrostError, NotFound
from bifrost_core.projects import service as projects
from bifrost_core.projects.repository import SequenceRepository, ShotRepository
from bifrost_core.projects.schemas import SequenceCreate, SequenceUpdate, ShotCreate, ShotUpdate
from bifrost_core.schemas import InputSchema
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.tasks.schemas import TaskCreate, TaskUpdate

router = APIRouter()
MAX_OPERATIONS = 1000
EntityId = Annotated[int, Field(ge=1, le=MAX_ID)]


class CreateSequence(InputSchema):
    op: Literal["create_sequence"]
    data: SequenceCreate


class UpdateSequence(InputSchema):
    op: Literal["update_sequence"]
    id: EntityId
    data: SequenceUpdate


class CreateShot(InputSchema):
    op: Literal["create_shot"]
    sequence_id: EntityId
    data: ShotCreate


class UpdateShot(InputSchema):
    op: Literal["update_shot"]
    id: EntityId
    data: ShotUpdate


class CreateAsset(InputSchema):
    op: Literal["create_asset"]
    data: AssetCreate


class UpdateAsset(InputSchema):
    op: Literal["update_asset"]
    id: EntityId
    data: AssetUpdate


class CreateTask(InputSchema):
    op: Literal["create_task"]
    data: TaskCreate


class UpdateTask(InputSchema):
    op: Literal["update_task"]
    id: EntityId
    data: TaskUpdate


class Cast(InputSchema):
    op: Literal["cast"]
    data: CastingCreate


Operation = Annotated[
    CreateSequence
    | UpdateSequence
    | CreateShot
    | UpdateShot
    | CreateAsset
    | UpdateAsset
    | CreateTask
    | UpdateTask
    | Cast,
    Field(discriminator="op"),
]


class BulkRequest(InputSchema):
    operations: list[Operation] = Field(min_length=1, max_length=MAX_OPERATIONS)


class BulkResult(BaseModel):
    op: str
    id: int


class BulkResponse(BaseModel):
    results: list[BulkResult]


def _same_project(project_id: int, entity_project_id: int, what: str) -> None:
    # An entity of another project is as absent here as it is everywhere else.
    if entity_project_id != project_id:
        raise NotFound(f"{what} not found in project {project_id}")


def _in_project(ctx: Ctx, project_id: int, entity_project_id: int, action: str, what: str) -> None:
    _same_project(project_id, entity_project_id, what)
    ctx.require(action, project_id)


def _apply(ctx: Ctx, project_id: int, operation: Operation) -> int:
    session, actor = ctx.session, ctx.actor
    match operation:
        case CreateSequence(data=data):
            ctx.require("structure.write", project_id)
            return projects.create_sequence(session, actor=actor, project_id=project_id, data=data).id
        case UpdateSequence(id=sequence_id, data=data):
            sequence = SequenceRepository(session, actor).get(sequence_id)
            _in_project(ctx, project_id, sequence.project_id, "structure.write", f"sequence {sequence_id}")
            return projects.update_sequence(session, actor=actor, sequence_id=sequence_id, data=data).id
        case CreateShot(sequence_id=sequence_id, data=data):
            sequence = SequenceRepository(session, actor).get(sequence_id)
            _in_project(ctx, project_id, sequence.project_id, "shots.write", f"sequence {sequence_id}")
            return projects.create_shot(session, actor=actor, sequence_id=sequence_id, data=data).id
        case UpdateShot(id=shot_id, data=data):
            shot = ShotRepository(session, actor).get(shot_id)
            _in_project(ctx, project_id, shot.project_id, "shots.write", f"shot {shot_id}")
            return projects.update_shot(session, actor=actor, shot_id=shot_id, data=data).id
        case CreateAsset(data=data):
            ctx.require("shots.write", project_id)
            return assets.create_asset(session, actor=actor, project_id=project_id, data=data).id
        case UpdateAsset(id=asset_id, data=data):
            asset = AssetRepository(session, actor).get(asset_id)
            _in_project(ctx, project_id, asset.project_id, "shots.write", f"asset {asset_id}")
            return assets.update_asset(session, actor=actor, asset_id=asset_id, data=data).id
        case CreateTask(data=data):
            if data.shot_id is not None:
                entity_project = ShotRepository(session, actor).get(data.shot_id).project_id
            else:
                entity_project = AssetRepository(session, actor).get(data.asset_id).project_id  # type: ignore[arg-type]
            _in_project(ctx, project_id, entity_project, "tasks.write", "the task's shot or asset")
            return tasks.create_task(session, actor=actor, data=data).id
        case UpdateTask(id=task_id, data=data):
            task = TaskRepository(session, actor).get(task_id)
            _same_project(project_id, task.project_id, f"task {task_id}")
            require_task_update(ctx, task, data)
            return tasks.update_task(session, actor=actor, task_id=task_id, data=data).id
        case Cast(data=data):
            shot = ShotRepository(session, actor).get(data.shot_id)
            _in_project(ctx, project_id, shot.project_id, "shots.write", f"shot {data.shot_id}")
            return assets.cast(session, actor=actor, data=data).id
    raise AssertionError(f"unhandled operation {operation!r}")


@router.post("/projects/{project_id}/bulk", response_model=BulkResponse, tags=["bulk"])
def bulk(ctx: CtxDep, project_id: Id, data: BulkRequest) -> Response:
    """Apply the operations in order in one transaction; the first failure undoes them all
    and its error names the operation's index."""
    ctx.project(project_id, "production.read")
    results = []
    for index, operation in enumerate(data.operations):
        try:
            results.append(BulkResult(op=operation.op, id=_apply(ctx, project_id, operation)))
        except BifrostError as exc:
            exc.message = f"operation {index} ({operation.op}): {exc.message}"
            exc.details = {**exc.details, "index": index}
            raise
    return ctx.done(BulkResponse(results=results))
