"""`bifrost shot`: shots, referenced as PROJECT SEQUENCE SHOT."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Shots: frame ranges, handles and cut points.", no_args_is_help=True)


@app.command("create")
def create(
    project: Annotated[str, typer.Argument(help="Project code")],
    sequence: Annotated[str, typer.Argument(help="Sequence code")],
    code: Annotated[str, typer.Argument(help="Shot code, e.g. SH010")],
    frame_in: Annotated[int, typer.Option(help="First frame of the cut range")] = 1001,
    frame_out: Annotated[int, typer.Option(help="Last frame of the cut range")] = 1100,
    handles: Annotated[int, typer.Option(help="Handles on both ends (frames)")] = 0,
    handles_in: Annotated[int | None, typer.Option(help="Head handles; overrides --handles")] = None,
    handles_out: Annotated[int | None, typer.Option(help="Tail handles; overrides --handles")] = None,
    cut_in: Annotated[int | None, typer.Option(help="Cut in, in the edit")] = None,
    cut_out: Annotated[int | None, typer.Option(help="Cut out, in the edit")] = None,
    fps: Annotated[str | None, typer.Option(help="Frame rate, when it differs from the project's")] = None,
    description: Annotated[str, typer.Option(help="Free text")] = "",
) -> None:
    """Create a shot in a sequence."""
    from bifrost_core.codes import project_by_code, sequence_by_code
    from bifrost_core.projects import service
    from bifrost_core.projects.schemas import ShotCreate

    data = ShotCreate(
        code=code,
        frame_in=frame_in,
        frame_out=frame_out,
        handles_in=handles if handles_in is None else handles_in,
        handles_out=handles if handles_out is None else handles_out,
        cut_in=cut_in,
        cut_out=cut_out,
        fps=fps,
        description=description,
    )
    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        sequence_row = sequence_by_code(uow.session, uow.actor, project_row.id, sequence)
        shot = service.create_shot(uow.session, actor=uow.actor, sequence_id=sequence_row.id, data=data)
        uow.commit()
    done(
        f"created shot {project}/{sequence}/{shot.code} "
        f"({shot.frame_in}-{shot.frame_out}, handles {shot.handles_in}/{shot.handles_out})"
    )


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    sequence: Annotated[str | None, typer.Option(help="Only the shots of this sequence")] = None,
    status: Annotated[str | None, typer.Option(help="Only shots with this status")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the shots of a project, in sequence order."""
    from sqlalchemy import select

    from bifrost_core.codes import project_by_code, sequence_by_code
    from bifrost_core.projects.models import Sequence, Shot
    from bifrost_core.projects.schemas import ShotRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        stmt = (
            select(Shot, Sequence.code)
            .join(Sequence, Sequence.id == Shot.sequence_id)
            .where(Shot.project_id == project_row.id)
            .order_by(Sequence.code, Shot.code)
        )
        if sequence is not None:
            sequence_row = sequence_by_code(uow.session, uow.actor, project_row.id, sequence)
            stmt = stmt.where(Shot.sequence_id == sequence_row.id)
        if status is not None:
            stmt = stmt.where(Shot.status == status)
        rows = uow.session.execute(stmt).all()
        render_list(
            [shot for shot, _ in rows],
            ShotRead,
            shot_columns({shot.id: sequence_code for shot, sequence_code in rows}),
            as_json=as_json,
            title=f"Shots of {project}",
        )


def shot_columns(sequence_codes: dict[int, str]) -> list:
    """The table columns of a shot list; also used by `bifrost demo`."""
    return [
        ("sequence", lambda s: sequence_codes[s.id]),
        ("shot", lambda s: s.code),
        ("in", lambda s: s.frame_in),
        ("out", lambda s: s.frame_out),
        ("frames", lambda s: s.frame_out - s.frame_in + 1),
        ("handles", lambda s: f"{s.handles_in}/{s.handles_out}"),
        ("status", lambda s: s.status),
    ]


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    sequence: Annotated[str, typer.Argument(help="Sequence code")],
    code: Annotated[str, typer.Argument(help="Shot code")],
    as_json: bool = JsonOption,
) -> None:
    """Show one shot."""
    from bifrost_core.codes import project_by_code, shot_by_code
    from bifrost_core.projects.schemas import ShotRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        shot = shot_by_code(uow.session, uow.actor, project_row.id, sequence, code)
        render_one(shot, ShotRead, as_json=as_json, title=f"Shot {project}/{sequence}/{code}")
