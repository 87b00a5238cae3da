"""`bifrost sequence`: sequences of shots within a project."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Sequences: groups of shots.", no_args_is_help=True)


@app.command("create")
def create(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Sequence code, e.g. SQ010")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    description: Annotated[str, typer.Option(help="Free text")] = "",
    episode: Annotated[str | None, typer.Option(help="Code of the episode it belongs to")] = None,
) -> None:
    """Create a sequence in a project."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects import service
    from bifrost_core.projects.repository import EpisodeRepository
    from bifrost_core.projects.schemas import SequenceCreate

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        episode_id = None
        if episode is not None:
            episode_id = EpisodeRepository(uow.session, uow.actor).by_code(project_row.id, episode).id
        data = SequenceCreate(code=code, name=name, description=description, episode_id=episode_id)
        service.create_sequence(uow.session, actor=uow.actor, project_id=project_row.id, data=data)
        uow.commit()
    done(f"created sequence {project}/{data.code}")


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    episode: Annotated[str | None, typer.Option(help="Only the sequences of this episode")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the sequences of a project."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects.models import Sequence
    from bifrost_core.projects.repository import EpisodeRepository, SequenceRepository
    from bifrost_core.projects.schemas import SequenceRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        conditions = [Sequence.project_id == project_row.id]
        if episode is not None:
            episode_row = EpisodeRepository(uow.session, uow.actor).by_code(project_row.id, episode)
            conditions.append(Sequence.episode_id == episode_row.id)
        rows = SequenceRepository(uow.session, uow.actor).list(*conditions)
        render_list(
            rows,
            SequenceRead,
            [
                ("code", lambda s: s.code),
                ("name", lambda s: s.name),
                ("description", lambda s: s.description),
            ],
            as_json=as_json,
            title=f"Sequences of {project}",
        )


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Sequence code")],
    as_json: bool = JsonOption,
) -> None:
    """Show one sequence."""
    from bifrost_core.codes import project_by_code, sequence_by_code
    from bifrost_core.projects.schemas import SequenceRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        sequence = sequence_by_code(uow.session, uow.actor, project_row.id, code)
        render_one(sequence, SequenceRead, as_json=as_json, title=f"Sequence {project}/{code}")
