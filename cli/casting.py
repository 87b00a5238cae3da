"""`bifrost casting`: which assets appear in which shots, and how many times."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list

app = typer.Typer(help="Casting: assets in shots.", no_args_is_help=True)


@app.command("cast")
def cast(
    project: Annotated[str, typer.Argument(help="Project code")],
    sequence: Annotated[str, typer.Argument(help="Sequence code")],
    shot: Annotated[str, typer.Argument(help="Shot code")],
    asset: Annotated[str, typer.Argument(help="Asset code")],
    count: Annotated[int, typer.Option(help="How many times the asset appears")] = 1,
) -> None:
    """Cast an asset into a shot (casting it again sets the new count)."""
    from bifrost_core.assets import service
    from bifrost_core.assets.schemas import CastingCreate
    from bifrost_core.codes import asset_by_code, project_by_code, shot_by_code

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        shot_row = shot_by_code(uow.session, uow.actor, project_row.id, sequence, shot)
        asset_row = asset_by_code(uow.session, uow.actor, project_row.id, asset)
        data = CastingCreate(shot_id=shot_row.id, asset_id=asset_row.id, count=count)
        service.cast(uow.session, actor=uow.actor, data=data)
        uow.commit()
    done(f"cast {asset} x{count} into {sequence}/{shot}")


@app.command("uncast")
def uncast(
    project: Annotated[str, typer.Argument(help="Project code")],
    sequence: Annotated[str, typer.Argument(help="Sequence code")],
    shot: Annotated[str, typer.Argument(help="Shot code")],
    asset: Annotated[str, typer.Argument(help="Asset code")],
) -> None:
    """Remove an asset from a shot."""
    from bifrost_core.assets import service
    from bifrost_core.assets.models import Casting
    from bifrost_core.assets.repository import CastingRepository
    from bifrost_core.codes import asset_by_code, project_by_code, shot_by_code
    from bifrost_core.errors import NotFound

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        shot_row = shot_by_code(uow.session, uow.actor, project_row.id, sequence, shot)
        asset_row = asset_by_code(uow.session, uow.actor, project_row.id, asset)
        casting = CastingRepository(uow.session, uow.actor).first(
            Casting.shot_id == shot_row.id, Casting.asset_id == asset_row.id
        )
        if casting is None:
            raise NotFound(f"asset {asset!r} is not cast in {sequence}/{shot}")
        service.uncast(uow.session, actor=uow.actor, casting_id=casting.id)
        uow.commit()
    done(f"removed {asset} from {sequence}/{shot}")


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    shot: Annotated[str | None, typer.Option(help="Only this shot, as SEQUENCE/SHOT")] = None,
    asset: Annotated[str | None, typer.Option(help="Only this asset")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the casting of a project."""
    from bifrost_core.assets.models import Casting
    from bifrost_core.assets.repository import CastingRepository
    from bifrost_core.assets.schemas import CastingRead
    from bifrost_core.codes import asset_by_code, asset_codes, project_by_code, shot_by_code, shot_refs
    from bifrost_core.errors import InvalidInput

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        conditions = [Casting.project_id == project_row.id]
        if shot is not None:
            sequence_code, slash, shot_code = shot.partition("/")
            if not slash:
                raise InvalidInput(f"--shot takes SEQUENCE/SHOT, not {shot!r}")
            shot_row = shot_by_code(uow.session, uow.actor, project_row.id, sequence_code, shot_code)
            conditions.append(Casting.shot_id == shot_row.id)
        if asset is not None:
            asset_row = asset_by_code(uow.session, uow.actor, project_row.id, asset)
            conditions.append(Casting.asset_id == asset_row.id)
        rows = CastingRepository(uow.session, uow.actor).list(*conditions)
        shots = shot_refs(uow.session, (row.shot_id for row in rows))
        assets = asset_codes(uow.session, (row.asset_id for row in rows))
        render_list(
            sorted(rows, key=lambda c: (shots[c.shot_id], assets[c.asset_id])),
            CastingRead,
            [
                ("shot", lambda c: shots[c.shot_id]),
                ("asset", lambda c: assets[c.asset_id]),
                ("count", lambda c: c.count),
            ],
            as_json=as_json,
            title=f"Casting of {project}",
        )
