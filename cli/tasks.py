"""`bifrost task`: work on a shot or an asset, referenced as PROJECT ENTITY NAME.

ENTITY is a shot as SEQUENCE/SHOT (e.g. SQ010/SH010) or an asset by its code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import ENTITY_HELP, unit_of_work
from cli.output import JsonOption, done, render_list, render_one

if TYPE_CHECKING:
    from cli.common import CommandUnit

app = typer.Typer(help="Tasks: assignments and statuses on shots and assets.", no_args_is_help=True)

EntityArg = Annotated[str, typer.Argument(help=ENTITY_HELP)]


def _user_ids(uow: CommandUnit, usernames: list[str]) -> list[int]:
    from bifrost_core.users.repository import UserRepository

    users = UserRepository(uow.session, uow.actor)
    return [users.by_username(username).id for username in usernames]


@app.command("create")
def create(
    project: Annotated[str, typer.Argument(help="Project code")],
    entity: EntityArg,
    task_type: Annotated[str, typer.Argument(help="Task type code, e.g. anim (created when new)")],
    name: Annotated[str | None, typer.Option(help="Task name (defaults to the task type)")] = None,
    assignee: Annotated[list[str] | None, typer.Option(help="Username to assign; repeatable")] = None,
    due: Annotated[str | None, typer.Option(help="Due date, YYYY-MM-DD")] = None,
) -> None:
    """Create a task on a shot or an asset."""
    from bifrost_core.codes import entity_by_ref, project_by_code
    from bifrost_core.tasks import service
    from bifrost_core.tasks.schemas import TaskCreate

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        kind, entity_row = entity_by_ref(uow.session, uow.actor, project_row.id, entity)
        data = TaskCreate(
            task_type=task_type,
            name=name,
            due_date=due,
            assignee_ids=_user_ids(uow, assignee or []),
            **{f"{kind}_id": entity_row.id},
        )
        task = service.create_task(uow.session, actor=uow.actor, data=data)
        uow.commit()
    done(f"created task {task.name} on {kind} {entity} (status {task.status})")


@app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="Project code")],
    entity: Annotated[str | None, typer.Option(help=f"Only tasks of this entity. {ENTITY_HELP}")] = None,
    task_type: Annotated[str | None, typer.Option("--type", help="Only tasks of this type")] = None,
    status: Annotated[str | None, typer.Option(help="Only tasks with this status")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only tasks assigned to this username")] = None,
    as_json: bool = JsonOption,
) -> None:
    """List the tasks of a project, with filters."""
    from sqlalchemy import select

    from bifrost_core.codes import asset_codes, entity_by_ref, project_by_code, shot_refs
    from bifrost_core.tasks.models import Task, TaskType
    from bifrost_core.tasks.repository import TaskRepository
    from bifrost_core.tasks.schemas import TaskRead
    from bifrost_core.users.models import User

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        conditions = [Task.project_id == project_row.id]
        if entity is not None:
            kind, entity_row = entity_by_ref(uow.session, uow.actor, project_row.id, entity)
            conditions.append((Task.shot_id if kind == "shot" else Task.asset_id) == entity_row.id)
        if task_type is not None:
            conditions.append(
                Task.task_type_id.in_(
                    select(TaskType.id).where(
                        TaskType.project_id == project_row.id, TaskType.code == task_type
                    )
                )
            )
        if status is not None:
            conditions.append(Task.status == status)
        if assignee is not None:
            conditions.append(Task.assignees.any(User.id == _user_ids(uow, [assignee])[0]))
        rows = TaskRepository(uow.session, uow.actor).list(*conditions)
        shots = shot_refs(uow.session, (t.shot_id for t in rows if t.shot_id))
        assets = asset_codes(uow.session, (t.asset_id for t in rows if t.asset_id))
        render_list(
            rows,
            TaskRead,
            [
                ("entity", lambda t: shots[t.shot_id] if t.shot_id else assets[t.asset_id]),
                ("task", lambda t: t.name),
                ("status", lambda t: t.status),
                ("assignees", lambda t: ", ".join(sorted(u.username for u in t.assignees))),
                ("due", lambda t: t.due_date),
            ],
            as_json=as_json,
            title=f"Tasks of {project}",
        )


@app.command("show")
def show(
    project: Annotated[str, typer.Argument(help="Project code")],
    entity: EntityArg,
    name: Annotated[str, typer.Argument(help="Task name")],
    as_json: bool = JsonOption,
) -> None:
    """Show one task."""
    from bifrost_core.codes import project_by_code, task_by_ref
    from bifrost_core.tasks.schemas import TaskRead

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        task = task_by_ref(uow.session, uow.actor, project_row.id, entity, name)
        render_one(task, TaskRead, as_json=as_json, title=f"Task {project} {entity} {name}")


@app.command("set-status")
def set_status(
    project: Annotated[str, typer.Argument(help="Project code")],
    entity: EntityArg,
    name: Annotated[str, typer.Argument(help="Task name")],
    status: Annotated[str, typer.Argument(help="New status code (see `bifrost workflow show`)")],
) -> None:
    """Move a task to another status, if the project's workflow allows the transition."""
    from bifrost_core.codes import project_by_code, task_by_ref
    from bifrost_core.tasks import service
    from bifrost_core.tasks.schemas import TaskUpdate

    with unit_of_work() as uow:
        project_row = project_by_code(uow.session, uow.actor, project)
        task = task_by_ref(uow.session, uow.actor, project_row.id, entity, name)
        previous = task.status
        service.update_task(uow.session, actor=uow.actor, task_id=task.id, data=TaskUpdate(status=status))
        uow.commit()
    done(f"task {name} on {entity}: {previous} -> {status}")
