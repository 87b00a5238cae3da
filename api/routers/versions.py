"""Versions (publishes), their representations (read only) and review notes."""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter
from fastapi.responses import Response

from api import cached
from api.deps import CtxDep
from api.params import After, Id, Limit, OptionalId, Page, Status, UpdatedSince, page
from bifrost_core.reviews import service as reviews
from bifrost_core.reviews.schemas import NoteCreate, NoteRead
from bifrost_core.schemas import ReadSchema
from bifrost_core.versions import service
from bifrost_core.versions.models import Representation, Version
from bifrost_core.versions.repository import RepresentationRepository, VersionRepository
from bifrost_core.versions.schemas import (
    FileRead,
    RepresentationRead,
    VersionCreate,
    VersionRead,
    VersionUpdate,
)

router = APIRouter()


class RepresentationDetail(RepresentationRead):
    files: list[FileRead]


class RepresentationList(ReadSchema):
    items: list[RepresentationRead]


@router.get("/projects/{project_id}/versions", response_model=Page[VersionRead], tags=["versions"])
def list_versions(
    ctx: CtxDep,
    project_id: Id,
    task_id: OptionalId = None,
    shot_id: OptionalId = None,
    asset_id: OptionalId = None,
    status: Status = None,
    updated_since: UpdatedSince = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    ctx.project(project_id, "versions.read")
    conditions = [Version.project_id == project_id]
    if updated_since is not None:
        conditions.append(Version.updated_at >= updated_since)
    filters = {"task_id": task_id, "shot_id": shot_id, "asset_id": asset_id, "status": status}
    rows = VersionRepository(ctx.session, ctx.actor).list(
        *conditions, filters=filters, after=after, limit=limit
    )
    return ctx.respond(page(VersionRead, rows, limit))


@router.post("/versions", response_model=VersionRead, status_code=201, tags=["versions"])
def create_version(ctx: CtxDep, data: VersionCreate) -> Response:
    """Publish: the number is allocated by Bifrost (gapless per task and variant)."""
    version = service.create_version(ctx.session, actor=ctx.actor, data=data)
    return ctx.done(VersionRead.model_validate(version), 201)


@router.get("/versions/{version_id}", response_model=VersionRead, tags=["versions"])
def get_version(ctx: CtxDep, version_id: Id) -> Response:
    return cached.read(
        ctx,
        "version",
        version_id,
        action="versions.read",
        schema=VersionRead,
        load=lambda: VersionRepository(ctx.session, ctx.actor).get(version_id),
    )


@router.patch("/versions/{version_id}", response_model=VersionRead, tags=["versions"])
def update_version(ctx: CtxDep, version_id: Id, data: VersionUpdate) -> Response:
    """Review: change the status (along the version workflow) or the comment."""
    version = service.update_version(ctx.session, actor=ctx.actor, version_id=version_id, data=data)
    return ctx.done(VersionRead.model_validate(version))


@router.get(
    "/versions/{version_id}/representations", response_model=RepresentationList, tags=["representations"]
)
def list_representations(ctx: CtxDep, version_id: Id) -> Response:
    version = VersionRepository(ctx.session, ctx.actor).get(version_id)
    ctx.require("versions.read", version.project_id)
    return ctx.respond(RepresentationList(items=version.representations))


@router.get(
    "/representations/{representation_id}", response_model=RepresentationDetail, tags=["representations"]
)
def get_representation(ctx: CtxDep, representation_id: Id) -> Response:
    representation: Representation = RepresentationRepository(ctx.session, ctx.actor).get(representation_id)
    ctx.require("versions.read", representation.version.project_id)
    detail = RepresentationDetail.model_validate(representation)
    where = service.file_locations(ctx.session, representation)
    for file in detail.files:
        file.locations = where.get(file.name, {})
    return ctx.respond(detail)


# Notes: on a version, a shot or an asset.


def _note_routes(target: str) -> None:
    plural = f"{target}s"

    @router.get(
        f"/{plural}/{{target_id}}/notes",
        response_model=Page[NoteRead],
        tags=["notes"],
        name=f"list_{target}_notes",
    )
    def list_notes(ctx: CtxDep, target_id: Id, after: After = None, limit: Limit = 100) -> Response:
        rows = reviews.list_notes(
            ctx.session, actor=ctx.actor, target=target, target_id=target_id, after=after, limit=limit
        )
        return ctx.respond(page(NoteRead, rows, limit))

    @router.post(
        f"/{plural}/{{target_id}}/notes",
        response_model=NoteRead,
        status_code=201,
        tags=["notes"],
        name=f"create_{target}_note",
    )
    def create_note(ctx: CtxDep, target_id: Id, data: NoteCreate) -> Response:
        note = reviews.create_note(
            ctx.session, actor=ctx.actor, target=target, target_id=target_id, data=data
        )
        return ctx.done(NoteRead.model_validate(note), 201)


for _target in get_args(reviews.Target):
    _note_routes(_target)


@router.get("/notes/{note_id}", response_model=NoteRead, tags=["notes"])
def get_note(ctx: CtxDep, note_id: Id) -> Response:
    note = reviews.get_note(ctx.session, actor=ctx.actor, note_id=note_id)
    return ctx.respond(NoteRead.model_validate(note))
