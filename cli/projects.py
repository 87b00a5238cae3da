"""`bifrost project`: create, list and show projects."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, done, render_list, render_one

app = typer.Typer(help="Projects: the top of the production tree.", no_args_is_help=True)


@app.command("create")
def create(
    code: Annotated[str, typer.Argument(help="Project code, e.g. DEMO")],
    name: Annotated[str, typer.Option(help="Display name (defaults to the code)")] = "",
    fps: Annotated[str, typer.Option(help="Frames per second, e.g. 24 or 23.976")] = "24",
    width: Annotated[int, typer.Option(help="Resolution width in pixels")] = 1920,
    height: Annotated[int, typer.Option(help="Resolution height in pixels")] = 1080,
    padding: Annotated[int, typer.Option(help="Frame number padding")] = 4,
) -> None:
    """Create a project (with the default task and version workflows)."""
    from bifrost_core.projects import service
    from bifrost_core.projects.schemas import ProjectCreate

    data = ProjectCreate(
        code=code,
        name=name or code,
        fps=fps,
        resolution_width=width,
        resolution_height=height,
        frame_padding=padding,
    )
    with unit_of_work() as uow:
        project = service.create_project(uow.session, actor=uow.actor, data=data)
        uow.commit()
    done(f"created project {project.code} ({project.fps} fps, {width}x{height})")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List the projects."""
    from bifrost_core.projects.repository import ProjectRepository
    from bifrost_core.projects.schemas import ProjectRead

    with unit_of_work() as uow:
        rows = ProjectRepository(uow.session, uow.actor).list()
        render_list(
            rows,
            ProjectRead,
            [
                ("code", lambda p: p.code),
                ("name", lambda p: p.name),
                ("fps", lambda p: p.fps.normalize()),
                ("resolution", lambda p: f"{p.resolution_width}x{p.resolution_height}"),
                ("status", lambda p: p.status),
            ],
            as_json=as_json,
            title="Projects",
        )


@app.command("show")
def show(code: Annotated[str, typer.Argument(help="Project code")], as_json: bool = JsonOption) -> None:
    """Show one project."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.projects.schemas import ProjectRead

    with unit_of_work() as uow:
        project = project_by_code(uow.session, uow.actor, code)
        render_one(project, ProjectRead, as_json=as_json, title=f"Project {code}")
