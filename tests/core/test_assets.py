"""Asset types, assets and casting."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from bifrost_core.assets import service as assets
from bifrost_core.assets.models import AssetType, Casting
from bifrost_core.assets.repository import AssetRepository, AssetTypeRepository, CastingRepository
from bifrost_core.assets.schemas import AssetTypeCreate, AssetUpdate, CastingCreate
from bifrost_core.errors import Conflict, InvalidInput, NotFound
from bifrost_core.scope import SYSTEM


def test_create_asset_creates_its_type_once(session, build):
    project = build.project("P1")
    chair, table = build.asset(project, "chair", "prop"), build.asset(project, "table", "prop")
    hero = build.asset(project, "hero", "character")
    assert chair.asset_type_id == table.asset_type_id != hero.asset_type_id
    codes = sorted(t.code for t in AssetTypeRepository(session).list(filters={"project_id": project.id}))
    assert codes == ["character", "prop"]


def test_duplicate_asset_type_and_asset_are_conflicts(session, build):
    project, other = build.project("P1"), build.project("P2")
    assets.create_asset_type(session, actor=SYSTEM, project_id=project.id, data=AssetTypeCreate(code="fx"))
    with pytest.raises(Conflict, match="asset type 'fx' already exists"):
        assets.create_asset_type(
            session, actor=SYSTEM, project_id=project.id, data=AssetTypeCreate(code="fx")
        )
    build.asset(project, "chair")
    with pytest.raises(Conflict, match="asset 'chair' already exists"):
        build.asset(project, "chair", "set")
    # The failed create made no new asset type "set" either.
    assert not session.scalar(select(func.count(AssetType.id)).where(AssetType.code == "set"))
    assert build.asset(other, "chair").project_id == other.id


def test_asset_update_is_partial_and_refuses_null(session, build):
    asset = build.asset(build.project("P1"), "chair")
    assets.update_asset(
        session, actor=SYSTEM, asset_id=asset.id, data=AssetUpdate(description="wooden", meta={"lod": 2})
    )
    session.expire_all()
    asset = AssetRepository(session).by_code(asset.project_id, "chair")
    assert (asset.description, asset.meta, asset.status, asset.name) == ("wooden", {"lod": 2}, "active", "")
    with pytest.raises(InvalidInput, match="status cannot be null"):
        assets.update_asset(session, actor=SYSTEM, asset_id=asset.id, data=AssetUpdate(status=None))
    with pytest.raises(ValidationError):
        AssetUpdate(status="gone")
    with pytest.raises(NotFound):
        AssetRepository(session).by_code(asset.project_id, "sofa")


def test_casting_sets_count_and_recasting_updates_it(session, build):
    project = build.project("P1")
    shot = build.shot(build.sequence(project))
    chair = build.asset(project, "chair")
    first = assets.cast(
        session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=chair.id, count=2)
    )
    again = assets.cast(
        session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=chair.id, count=5)
    )
    assert first.id == again.id
    rows = CastingRepository(session).list(filters={"shot_id": shot.id})
    assert [(row.asset_id, row.count, row.project_id) for row in rows] == [(chair.id, 5, project.id)]


def test_casting_refuses_assets_of_another_project_and_bad_counts(session, build):
    project, other = build.project("P1"), build.project("P2")
    shot = build.shot(build.sequence(project))
    foreign = build.asset(other, "chair")
    with pytest.raises(InvalidInput, match="different projects"):
        assets.cast(session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=foreign.id))
    assert session.scalar(select(func.count(Casting.id))) == 0
    with pytest.raises(ValidationError):
        CastingCreate(shot_id=shot.id, asset_id=foreign.id, count=0)


def test_uncast_removes_the_casting(session, build):
    project = build.project("P1")
    shot = build.shot(build.sequence(project))
    casting = assets.cast(
        session, actor=SYSTEM, data=CastingCreate(shot_id=shot.id, asset_id=build.asset(project).id)
    )
    assets.uncast(session, actor=SYSTEM, casting_id=casting.id)
    assert CastingRepository(session).list() == []
    with pytest.raises(NotFound):
        assets.uncast(session, actor=SYSTEM, casting_id=casting.id)
