"""Many creates and updates in one transaction: all of them happen, or none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.deps import Ctx, CtxDep
from api.params import Id
from bifrost_core.assets import service as assets
from bifrost_core.assets.schemas import AssetCreate, AssetUpdate, CastingCreate
from bifrost_core.db.repository import MAX_ID
from bifrost_core.errors import BifrostError, NotFound
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import SequenceCreate, SequenceUpdate, ShotCreate, ShotUpdate
from bifrost_core.schemas import InputSchema
from bifrost_core.scope import Actor
from bifrost_core.tasks import service as tasks
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


# What each operation does: the service that checks the caller's permission and writes.
# Each returns the entity it wrote, whose project must be the request's.
OPERATIONS: dict[str, Callable[[Session, Actor, int, Any], Any]] = {
    "create_sequence": lambda s, actor, project_id, o: projects.create_sequence(
        s, actor=actor, project_id=project_id, data=o.data
    ),
    "update_sequence": lambda s, actor, _, o: projects.update_sequence(
        s, actor=actor, sequence_id=o.id, data=o.data
    ),
    "create_shot": lambda s, actor, _, o: projects.create_shot(
        s, actor=actor, sequence_id=o.sequence_id, data=o.data
    ),
    "update_shot": lambda s, actor, _, o: projects.update_shot(s, actor=actor, shot_id=o.id, data=o.data),
    "create_asset": lambda s, actor, project_id, o: assets.create_asset(
        s, actor=actor, project_id=project_id, data=o.data
    ),
    "update_asset": lambda s, actor, _, o: assets.update_asset(s, actor=actor, asset_id=o.id, data=o.data),
    "create_task": lambda s, actor, _, o: tasks.create_task(s, actor=actor, data=o.data),
    "update_task": lambda s, actor, _, o: tasks.update_task(s, actor=actor, task_id=o.id, data=o.data),
    "cast": lambda s, actor, _, o: assets.cast(s, actor=actor, data=o.data),
}


def _apply(ctx: Ctx, project_id: int, operation: Operation) -> int:
    entity = OPERATIONS[operation.op](ctx.session, ctx.actor, project_id, operation)
    if entity.project_id != project_id:
        # Another project's entity is as absent here as everywhere else. Found after the
        # write, which the refusal rolls back with the whole request.
        raise NotFound(f"{operation.op} names an entity not found in project {project_id}")
    return entity.id


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
