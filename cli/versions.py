"""`bifrost version`: published versions (immutable, numbered per entity, task and variant)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.common import ENTITY_HELP, unit_of_work
from cli.output import JsonOption, cell, print_json, render_list, render_one

if TYPE_CHECKING:
    from cli.common import CommandUnit

# Arguments the version commands share.
ProjectArg = Annotated[str, typer.Argument(help="Project code")]
EntityArg = Annotated[str, typer.Argument(help=ENTITY_HELP)]
TaskArg = Annotated[str, typer.Argument(help="Task name")]
NumberArg = Annotated[int | None, typer.Argument(help="Version number (the latest when omitted)")]
VariantOption = Annotated[str, typer.Option(help="Variant name")]

app = typer.Typer(help="Versions: numbered publishes of a task's output.", no_args_is_help=True)


@app.command("list")
def list_(
    project: ProjectArg,
    entity: Annotated[str | None, typer.Option(help=f"Only versions of this entity. {ENTITY_HELP}")] = None,
    task: Annotated[str | None, typer.Option(help="Only versions of tasks with this name")] = None,
    variant: Annotated[str | None, typer.Option(help="Only this variant")] = None,
    status: Annotated[str | None, typer.Option(help="Only versions with this status")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the versions of a project, with filters."""
    from sqlalchemy import select

    from bifrost_core.codes import asset_codes, entity_by_ref, project_by_code, shot_refs
    from bifrost_core.tasks.models import Task
    from bifrost_core.versions.models import Version
    from bifrost_core.versions.repository import VersionRepository
    from bifrost_core.versions.schemas import VersionRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        conditions = [Version.project_id == project_row.id]
        if entity is not None:
            kind, entity_row = entity_by_ref(uow.session, uow.actor, project_row.id, entity)
            conditions.append((Version.shot_id if kind == "shot" else Version.asset_id) == entity_row.id)
        if task is not None:
            conditions.append(
                Version.task_id.in_(
                    select(Task.id).where(Task.project_id == project_row.id, Task.name == task)
                )
            )
        if variant is not None:
            conditions.append(Version.variant == variant)
        if status is not None:
            conditions.append(Version.status == status)
        rows = VersionRepository(uow.session, uow.actor).list(*conditions)
        shots = shot_refs(uow.session, (v.shot_id for v in rows if v.shot_id))
        assets = asset_codes(uow.session, (v.asset_id for v in rows if v.asset_id))
        task_names = dict(
            uow.session.execute(
                select(Task.id, Task.name).where(Task.id.in_({v.task_id for v in rows}))
            ).all()
        )
        render_list(
            rows,
            VersionRead,
            [
                ("entity", lambda v: shots[v.shot_id] if v.shot_id else assets[v.asset_id]),
                ("task", lambda v: task_names[v.task_id]),
                ("variant", lambda v: v.variant),
                ("version", lambda v: f"v{v.number:03d}"),
                ("status", lambda v: v.status),
                ("representations", lambda v: ", ".join(r.name for r in v.representations)),
                ("comment", lambda v: v.comment),
            ],
            as_json=as_json,
            title=f"Versions of {project}",
        )


@app.command("show")
def show(
    project: ProjectArg,
    entity: EntityArg,
    task: TaskArg,
    number: NumberArg = None,
    variant: VariantOption = "main",
    as_json: bool = JsonOption,
) -> None:
    """Show one version with its representations."""
    from bifrost_core.versions.schemas import VersionRead

    with unit_of_work() as uow:
        version = _find_version(uow, project, entity, task, number, variant)
        render_one(version, VersionRead, as_json=as_json, title=_title(project, entity, task, version))


@app.command("files")
def files(
    project: ProjectArg,
    entity: EntityArg,
    task: TaskArg,
    number: NumberArg = None,
    variant: VariantOption = "main",
    as_json: bool = JsonOption,
) -> None:
    """List a version's files: published path, and where to read each in each tier."""
    from bifrost_core.versions.schemas import FileRead
    from bifrost_core.versions.service import file_locations

    with unit_of_work() as uow:
        version = _find_version(uow, project, entity, task, number, variant)
        title = _title(project, entity, task, version)
        rows = []
        for representation in version.representations:
            where = file_locations(uow.session, representation)
            for file in representation.files:
                read = FileRead.model_validate(file)
                read.locations = where.get(file.name, {})
                rows.append({"representation": representation.name, **read.model_dump(mode="json")})
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=cell(title))
    for column in ("representation", "name", "frame", "published path", "where"):
        # Paths wrap instead of being cut short: a truncated path is of no use.
        table.add_column(column, overflow="fold")
    for row in rows:
        # One line per tier: each location escaped on its own, the newlines between them kept.
        where = Text("\n").join(cell(f"{tier}: {url}") for tier, url in sorted(row["locations"].items()))
        names = (row["representation"], row["name"], row["frame"], row["published_path"])
        table.add_row(*(cell(value) for value in names), where)
    Console().print(table)


def _title(project: str, entity: str, task: str, version: Any) -> str:
    return f"{project} {entity} {task} {version.variant} v{version.number:03d}"


def _find_version(
    uow: CommandUnit, project: str, entity: str, task: str, number: int | None, variant: str
) -> Any:
    from bifrost_core.codes import project_by_code, task_by_ref
    from bifrost_core.errors import NotFound
    from bifrost_core.versions.models import Version
    from bifrost_core.versions.repository import VersionRepository

    project_row = project_by_code(uow.session, uow.actor, project)
    task_row = task_by_ref(uow.session, uow.actor, project_row.id, entity, task)
    versions = VersionRepository(uow.session, uow.actor)
    if number is None:
        version = versions.latest(task_row.id, variant)
    else:
        version = versions.first(
            Version.task_id == task_row.id, Version.variant == variant, Version.number == number
        )
    if version is None:
        which = "no versions" if number is None else f"no version {number}"
        raise NotFound(f"{which} of task {task!r} on {entity!r} (variant {variant!r})")
    return version
