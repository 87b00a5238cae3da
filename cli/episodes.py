"""`bifrost episode`: the optional level between a project and its sequences."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Episodes (optional): group sequences of a series.", no_args_is_help=True)


@app.command("create")
def create(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Episode code, e.g. EP101")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
) -> None:
    """Create an episode in a project."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects import service
    from bifrost_core.projects.schemas import EpisodeCreate

    data = EpisodeCreate(code=code, name=name)
    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        service.create_episode(uow.session, actor=uow.actor, project_id=project_row.id, data=data)
        uow.commit()
    done(f"created episode {project}/{data.code}")


@app.command("list")
def list_(project: Annotated[str, typer.Argument(help="Project code")], as_json: bool = JsonOption) -> None:
    """List the episodes of a project."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects.models import Episode
    from bifrost_core.projects.repository import EpisodeRepository
    from bifrost_core.projects.schemas import EpisodeRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        rows = EpisodeRepository(uow.session, uow.actor).list(Episode.project_id == project_row.id)
        render_list(
            rows,
            EpisodeRead,
            [("code", lambda e: e.code), ("name", lambda e: e.name)],
            as_json=as_json,
            title=f"Episodes of {project}",
        )


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    code: Annotated[str, typer.Argument(help="Episode code")],
    as_json: bool = JsonOption,
) -> None:
    """Show one episode."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects.repository import EpisodeRepository
    from bifrost_core.projects.schemas import EpisodeRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        episode = EpisodeRepository(uow.session, uow.actor).by_code(project_row.id, code)
        render_one(episode, EpisodeRead, as_json=as_json, title=f"Episode {project}/{code}")
