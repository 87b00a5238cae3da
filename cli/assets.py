"""`bifrost asset`: assets (characters, props, environments) of a project."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Assets: what is cast into shots.", no_args_is_help=True)


@app.command("create")
def create(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Asset code, e.g. hero")],
    asset_type: Annotated[str, typer.Option("--type", help="Asset type code (created when new)")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    description: Annotated[str, typer.Option(help="Free text")] = "",
) -> None:
    """Create an asset."""
    from bifrost_core.assets import service
    from bifrost_core.assets.schemas import AssetCreate
    from bifrost_core.codes import project_by_code

    data = AssetCreate(code=code, asset_type=asset_type, name=name, description=description)
    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        service.create_asset(uow.session, actor=uow.actor, project_id=project_row.id, data=data)
        uow.commit()
    done(f"created asset {project}/{data.code} ({data.asset_type})")


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    asset_type: Annotated[str | None, typer.Option("--type", help="Only assets of this type")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the assets of a project."""
    from sqlalchemy import select

    from bifrost_core.assets.models import Asset, AssetType
    from bifrost_core.assets.schemas import AssetRead
    from bifrost_core.codes import project_by_code

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        stmt = (
            select(Asset, AssetType.code)
            .join(AssetType, AssetType.id == Asset.asset_type_id)
            .where(Asset.project_id == project_row.id)
            .order_by(AssetType.code, Asset.code)
        )
        if asset_type is not None:
            stmt = stmt.where(AssetType.code == asset_type)
        rows = uow.session.execute(stmt).all()
        type_codes = {asset.id: type_code for asset, type_code in rows}
        render_list(
            [asset for asset, _ in rows],
            AssetRead,
            [
                ("type", lambda a: type_codes[a.id]),
                ("code", lambda a: a.code),
                ("name", lambda a: a.name),
                ("status", lambda a: a.status),
            ],
            as_json=as_json,
            title=f"Assets of {project}",
        )


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Asset code")],
    as_json: bool = JsonOption,
) -> None:
    """Show one asset."""
    from bifrost_core.assets.schemas import AssetRead
    from bifrost_core.codes import asset_by_code, project_by_code

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        asset = asset_by_code(uow.session, uow.actor, project_row.id, code)
        render_one(asset, AssetRead, as_json=as_json, title=f"Asset {project}/{code}")
