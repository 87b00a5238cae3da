"""`bifrost workflow`: a project's task and version statuses and the allowed transitions."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from cli.common import unit_of_work
from cli.output import JsonOption, cell, print_json

app = typer.Typer(help="Status workflows of a project.", no_args_is_help=True)


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    kind: Annotated[Literal["task", "version"], typer.Option(help="Which workflow")] = "task",
    as_json: bool = JsonOption,
) -> None:
    """Show the statuses and transitions of a project's task or version workflow."""
    from bifrost_core.codes import project_by_code
    from bifrost_core.workflow import service

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        workflow = service.get_workflow(uow.session, project_id=project_row.id, kind=kind)
    if as_json:
        print_json(workflow.model_dump(mode="json"))
        return
    from rich.console import Console
    from rich.table import Table

    targets: dict[str, list[str]] = {}
    for transition in workflow.transitions:
        targets.setdefault(transition.from_code, []).append(transition.to_code)
    table = Table(title=cell(f"{kind.capitalize()} workflow of {project}"))
    for header in ("status", "name", "", "can go to"):
        table.add_column(header)
    for status in workflow.statuses:
        flag = "initial" if status.is_initial else "final" if status.is_final else ""
        if status.on_new_version:
            flag = f"{flag}, on new version" if flag else "on new version"
        can_go_to = ", ".join(targets.get(status.code, []))
        table.add_row(cell(status.code), cell(status.name), flag, cell(can_go_to))
    Console().print(table)
