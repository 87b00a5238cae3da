"""Asset types, assets and casting."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api import cached
from api.deps import CtxDep
from api.params import After, CodeFilter, Id, Limit, OptionalId, Page, Status, UpdatedSince, project_rows
from bifrost_core.assets import service
from bifrost_core.assets.repository import AssetRepository, AssetTypeRepository, CastingRepository
from bifrost_core.assets.schemas import (
    AssetCreate,
    AssetRead,
    AssetTypeCreate,
    AssetTypeRead,
    AssetUpdate,
    CastingCreate,
    CastingRead,
)

router = APIRouter()


@router.get("/projects/{project_id}/asset-types", response_model=Page[AssetTypeRead], tags=["assets"])
def list_asset_types(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    return project_rows(ctx, project_id, AssetTypeRepository, AssetTypeRead, after=after, limit=limit)


@router.post(
    "/projects/{project_id}/asset-types", response_model=AssetTypeRead, status_code=201, tags=["assets"]
)
def create_asset_type(ctx: CtxDep, project_id: Id, data: AssetTypeCreate) -> Response:
    asset_type = service.create_asset_type(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(AssetTypeRead.model_validate(asset_type), 201)


@router.get("/projects/{project_id}/assets", response_model=Page[AssetRead], tags=["assets"])
def list_assets(
    ctx: CtxDep,
    project_id: Id,
    code: CodeFilter = None,
    asset_type_id: OptionalId = None,
    status: Status = None,
    updated_since: UpdatedSince = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    filters = {"asset_type_id": asset_type_id, "status": status}
    return project_rows(
        ctx,
        project_id,
        AssetRepository,
        AssetRead,
        filters=filters,
        code=code,
        updated_since=updated_since,
        after=after,
        limit=limit,
    )


@router.post("/projects/{project_id}/assets", response_model=AssetRead, status_code=201, tags=["assets"])
def create_asset(ctx: CtxDep, project_id: Id, data: AssetCreate) -> Response:
    asset = service.create_asset(ctx.session, actor=ctx.actor, project_id=project_id, data=data)
    return ctx.done(AssetRead.model_validate(asset), 201)


@router.get("/assets/{asset_id}", response_model=AssetRead, tags=["assets"])
def get_asset(ctx: CtxDep, asset_id: Id) -> Response:
    return cached.read(
        ctx,
        "asset",
        asset_id,
        action="production.read",
        schema=AssetRead,
        load=lambda: AssetRepository(ctx.session, ctx.actor).get(asset_id),
    )


@router.patch("/assets/{asset_id}", response_model=AssetRead, tags=["assets"])
def update_asset(ctx: CtxDep, asset_id: Id, data: AssetUpdate) -> Response:
    asset = service.update_asset(ctx.session, actor=ctx.actor, asset_id=asset_id, data=data)
    return ctx.done(AssetRead.model_validate(asset))


@router.get("/projects/{project_id}/casting", response_model=Page[CastingRead], tags=["casting"])
def list_casting(
    ctx: CtxDep,
    project_id: Id,
    shot_id: OptionalId = None,
    asset_id: OptionalId = None,
    after: After = None,
    limit: Limit = 100,
) -> Response:
    filters = {"shot_id": shot_id, "asset_id": asset_id}
    return project_rows(
        ctx, project_id, CastingRepository, CastingRead, filters=filters, after=after, limit=limit
    )


@router.post("/castings", response_model=CastingRead, status_code=201, tags=["casting"])
def cast(ctx: CtxDep, data: CastingCreate) -> Response:
    """Put an asset in a shot `count` times; casting it again sets the new count."""
    casting = service.cast(ctx.session, actor=ctx.actor, data=data)
    return ctx.done(CastingRead.model_validate(casting), 201)


@router.delete("/castings/{casting_id}", status_code=204, tags=["casting"])
def uncast(ctx: CtxDep, casting_id: Id) -> Response:
    service.uncast(ctx.session, actor=ctx.actor, casting_id=casting_id)
    return ctx.done(None, 204)
