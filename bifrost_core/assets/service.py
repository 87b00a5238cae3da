"""Rules for asset types, assets and casting."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset, AssetType, Casting
from bifrost_core.assets.repository import AssetRepository, AssetTypeRepository, CastingRepository
from bifrost_core.assets.schemas import AssetCreate, AssetTypeCreate, AssetUpdate, CastingCreate
from bifrost_core.db.guards import get_or_create
from bifrost_core.errors import InvalidInput
from bifrost_core.projects.repository import ProjectRepository, ShotRepository
from bifrost_core.schemas import changes
from bifrost_core.scope import Actor
from bifrost_core.users import permissions
from bifrost_core.writes import add_new, add_recorded, apply_update, put, refuse_duplicate, remove


def create_asset_type(session: Session, *, actor: Actor, project_id: int, data: AssetTypeCreate) -> AssetType:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "shots.write", project_id)
    return add_new(AssetTypeRepository(session, actor), AssetType(project_id=project_id, **data.model_dump()))


def asset_type_for(session: Session, *, actor: Actor, project_id: int, code: str) -> AssetType:
    return get_or_create(
        session,
        lambda: AssetTypeRepository(session, actor).first(
            AssetType.project_id == project_id, AssetType.code == code
        ),
        lambda: create_asset_type(
            session, actor=actor, project_id=project_id, data=AssetTypeCreate(code=code, name=code)
        ),
    )


def create_asset(session: Session, *, actor: Actor, project_id: int, data: AssetCreate) -> Asset:
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "shots.write", project_id)
    repository = AssetRepository(session, actor)
    refuse_duplicate(repository, {"project_id": project_id, "code": data.code})
    asset_type = asset_type_for(session, actor=actor, project_id=project_id, code=data.asset_type)
    fields = data.model_dump(exclude={"asset_type"})
    asset = Asset(project_id=project_id, asset_type_id=asset_type.id, **fields)
    return add_recorded(repository, asset, {"code": asset.code})


def update_asset(session: Session, *, actor: Actor, asset_id: int, data: AssetUpdate) -> Asset:
    repository = AssetRepository(session, actor)
    asset = repository.get(asset_id)
    permissions.require(actor, "shots.write", asset.project_id)
    return apply_update(repository, asset, changes(data))


def cast(session: Session, *, actor: Actor, data: CastingCreate) -> Casting:
    """Put an asset in a shot `count` times; casting it again sets the new count."""
    shot = ShotRepository(session, actor).get(data.shot_id)
    asset = AssetRepository(session, actor).get(data.asset_id)
    permissions.require(actor, "shots.write", shot.project_id)
    if shot.project_id != asset.project_id:
        raise InvalidInput("the shot and the asset belong to different projects")
    return put(
        CastingRepository(session, actor),
        {"project_id": shot.project_id, "shot_id": shot.id, "asset_id": asset.id},
        {"count": data.count},
    )


def uncast(session: Session, *, actor: Actor, casting_id: int) -> None:
    repository = CastingRepository(session, actor)
    casting = repository.get(casting_id)
    permissions.require(actor, "shots.write", casting.project_id)
    remove(repository, casting, {"shot_id": casting.shot_id, "asset_id": casting.asset_id})
