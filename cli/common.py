"""Shared helpers for every `bifrost` command: settings, one unit of work, output, errors.

Exit codes (one scheme for every command):

  0  success
  1  unexpected failure
  2  usage error (unknown option, missing argument)
  3  not found
  4  conflict: duplicate code, disallowed status transition
  5  invalid input: a value out of range, frame in after frame out
  6  not allowed: unauthenticated or forbidden
  7  configuration: invalid BIFROST_* setting, schema behind (run `bifrost init`)
  8  unavailable: the database or the storage cannot be reached
  9  `bifrost verify` found corrupt or missing blobs

Expected failures print one line on stderr (`error: ...`) and never a traceback;
nothing is committed, because each command commits only once, at its end.

Everything printed that can hold a delivered file name or text a user typed goes through
`bifrost_core.text.escape` (tables through `cell`): a name holding an escape sequence or a
newline shows as ``\x1b[31m`` or ``\n``, never reaches the terminal raw.

Auto-initialisation: on the embedded default (no BIFROST_DATABASE_URL) any
command creates the home and migrates the SQLite file on first use, so a newcomer
never has to run `bifrost init` first. It does not create the user 'admin' and its
token, so a later `bifrost init` still prints that token once. A database named by
BIFROST_DATABASE_URL (a shared server) is never migrated behind the operator's
back: until `bifrost init` has run, commands stop with exit 7.

Identity: every command acts as a named Bifrost user (`operator`), recorded on what it
writes: the user behind BIFROST_TOKEN, else the one named BIFROST_USER or, by default, the
operating-system login. On the embedded default that user is created as an admin on first
use (the operator owns the home); on a configured database an unknown user is exit 6.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

# typer carries its own copy of click: usage errors are this class, not click's.
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from bifrost_core.errors import (
    BifrostError,
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
    Unauthenticated,
)
from bifrost_core.text import escape

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.text import Text
    from sqlalchemy.orm import Session

    from bifrost_core.config import Settings
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.scope import Actor

EXIT_UNEXPECTED = 1
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_INVALID = 5
EXIT_FORBIDDEN = 6
EXIT_CONFIG = 7
EXIT_UNAVAILABLE = 8

# Most specific first: InvalidTransition is a Conflict, so it maps to EXIT_CONFLICT.
_EXIT_CODES: tuple[tuple[type[BifrostError], int], ...] = (
    (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT),
    (InvalidInput, EXIT_INVALID),
    (Unauthenticated, EXIT_FORBIDDEN),
    (PermissionDenied, EXIT_FORBIDDEN),
    (ConfigError, EXIT_CONFIG),
    (DatabaseUnavailable, EXIT_UNAVAILABLE),
    (StorageError, EXIT_UNAVAILABLE),
)


def exit_code(error: BifrostError) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_UNEXPECTED


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {escape(message)}", err=True)
    return typer.Exit(code)


def _validation_line(exc: Any) -> str:
    """A pydantic ValidationError as one line: `field: message; other: message`."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}" if field else message)
    return "; ".join(parts)


def _database_line(exc: Any) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return reason[0] if reason else type(exc).__name__


class BifrostGroup(TyperGroup):
    """The root command group: turns every expected failure of any subcommand into one line.

    Sitting on the root group means command modules added by others get the same
    handling without doing anything.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        from pydantic import ValidationError
        from sqlalchemy.exc import IntegrityError, OperationalError

        try:
            return super().invoke(ctx)
        except BifrostError as exc:
            raise fail(str(exc), exit_code(exc)) from None
        except ValidationError as exc:
            raise fail(_validation_line(exc), EXIT_INVALID) from None
        except IntegrityError as exc:
            # A concurrent writer won a race the service's own checks could not see.
            raise fail(f"conflicting write: {_database_line(exc)}", EXIT_CONFLICT) from None
        except OperationalError as exc:
            raise fail(f"database error: {_database_line(exc)}", EXIT_UNAVAILABLE) from None
        except OSError as exc:
            raise fail(
                f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_UNAVAILABLE
            ) from None
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except Exception as exc:
            # A bug, not bad input: still one line for the user; the traceback on request.
            if os.environ.get("BIFROST_DEBUG") == "1":
                raise
            raise fail(
                f"unexpected {type(exc).__name__}: {exc} (set BIFROST_DEBUG=1 for the traceback)",
                EXIT_UNEXPECTED,
            ) from None


def settings() -> Settings:
    from bifrost_core.config import load_settings

    return load_settings()


def open_database() -> Database:
    """Open the configured database; the embedded default migrates itself on first use."""
    from bifrost_core import bootstrap
    from bifrost_core.db import migrate

    config = settings()
    if config.database_url:
        return bootstrap.open_database(config)
    config.home.mkdir(parents=True, exist_ok=True)
    database = bootstrap.open_database(config, require_schema=False)
    if not migrate.is_up_to_date(database):
        migrate.upgrade(database)
    return database


def operator(database: Database) -> Actor:
    """The named user this command acts as (BIFROST_TOKEN, BIFROST_USER or the login name).

    On the embedded default the operator owns the home: a missing user is created as an
    admin. A configured database creates nobody behind the operator's back (exit 6).
    """
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.users import identity

    config = settings()
    with UnitOfWork(database) as uow:
        actor = identity.operator(uow.session, config, may_create=not config.database_url)
        uow.commit()  # the operator's account if it was just made, the token's last use
    return actor


def flow_actor(database: Database, project: str, action: str) -> str:
    """The operator's username, for the `actor` of a flow run this command starts.

    The flow's own check runs here first: a user it would refuse gets one line and exit 6
    before any Prefect server starts, not a failed run.
    """
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.users import identity

    username = operator(database).username
    with UnitOfWork(database) as uow:
        identity.flow_actor(uow.session, username=username, project=project, action=action)
    return username


@dataclass
class CommandUnit:
    """A command's one transaction (`session`, `commit()`), and the user it acts as."""

    uow: UnitOfWork
    actor: Actor

    @property
    def session(self) -> Session:
        return self.uow.session

    def commit(self) -> None:
        self.uow.commit()


@contextmanager
def unit_of_work() -> Iterator[CommandUnit]:
    """One transaction per command, acting as the operator (`uow.actor`): the command calls
    `uow.commit()` last; anything else rolls back."""
    from bifrost_core.db.uow import UnitOfWork

    database = open_database()
    try:
        actor = operator(database)
        with UnitOfWork(database) as uow:
            yield CommandUnit(uow, actor)
    finally:
        database.dispose()


JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON (and nothing else).")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def dump(schema: type[BaseModel], rows: Iterable[Any]) -> list[dict[str, Any]]:
    from bifrost_core.jsonbounds import jsonable

    return [jsonable(schema.model_validate(row)) for row in rows]


def render_list(
    rows: Sequence[Any],
    schema: type[BaseModel],
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    *,
    as_json: bool,
    title: str,
) -> None:
    """A list as JSON (the Read schema) or as a rich table with the given columns."""
    if as_json:
        print_json(dump(schema, rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=cell(title))
    for header, _ in columns:
        table.add_column(header)
    for row in rows:
        table.add_row(*(cell(value(row)) for _, value in columns))
    Console().print(table)


def render_one(row: Any, schema: type[BaseModel], *, as_json: bool, title: str) -> None:
    """One entity as JSON (the Read schema) or as a two-column rich table."""
    from bifrost_core.jsonbounds import jsonable

    data = jsonable(schema.model_validate(row))
    if as_json:
        print_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=cell(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(cell(key), cell(value))
    Console().print(table)


def cell(value: Any) -> Text:
    """A table cell (or title) that shows `value` as it is: control characters escaped,
    brackets never read as rich markup; lists and mappings as JSON."""
    from rich.text import Text

    if value is None:
        return Text()
    if isinstance(value, dict | list):
        return Text(json.dumps(value, default=str) if value else "")
    return Text(escape(value))


def say(message: str, *, err: bool = False) -> None:
    """One line of output that may hold delivered names or typed text, escaped."""
    typer.echo(escape(message), err=err)


def done(message: str) -> None:
    """A one-line confirmation of a write, on stdout."""
    say(message)


# Entities are referenced by code on the command line; these turn codes into rows
# (NotFound -> "error: project 'XYZ' not found", exit 3).


def project_by_code(session: Session, actor: Actor, code: str) -> Any:
    from bifrost_core.projects.repository import ProjectRepository

    return ProjectRepository(session, actor).by_code(code)


def sequence_by_code(session: Session, actor: Actor, project_id: int, code: str) -> Any:
    from bifrost_core.projects.repository import SequenceRepository

    return SequenceRepository(session, actor).by_code(project_id, code)


def shot_by_code(session: Session, actor: Actor, project_id: int, sequence_code: str, code: str) -> Any:
    from bifrost_core.projects.repository import ShotRepository

    sequence = sequence_by_code(session, actor, project_id, sequence_code)
    return ShotRepository(session, actor).by_code(sequence.id, code)


def asset_by_code(session: Session, actor: Actor, project_id: int, code: str) -> Any:
    from bifrost_core.assets.repository import AssetRepository

    return AssetRepository(session, actor).by_code(project_id, code)


ENTITY_HELP = "A shot as SEQUENCE/SHOT (e.g. SQ010/SH010) or an asset by its code."


def entity_by_ref(session: Session, actor: Actor, project_id: int, ref: str) -> tuple[str, Any]:
    """`SEQ/SHOT` names a shot, anything else an asset (asset codes cannot contain '/')."""
    if "/" in ref:
        sequence_code, _, shot_code = ref.partition("/")
        return "shot", shot_by_code(session, actor, project_id, sequence_code, shot_code)
    return "asset", asset_by_code(session, actor, project_id, ref)


def task_by_ref(session: Session, actor: Actor, project_id: int, entity_ref: str, name: str) -> Any:
    from bifrost_core.errors import NotFound
    from bifrost_core.tasks.models import Task
    from bifrost_core.tasks.repository import TaskRepository

    kind, entity = entity_by_ref(session, actor, project_id, entity_ref)
    column = Task.shot_id if kind == "shot" else Task.asset_id
    task = TaskRepository(session, actor).first(column == entity.id, Task.name == name)
    if task is None:
        raise NotFound(f"task {name!r} not found on {kind} {entity_ref!r}")
    return task


def shot_refs(session: Session, shot_ids: Iterable[int]) -> dict[int, str]:
    """`SEQ/SHOT` for each shot id, in one query, for list output."""
    from sqlalchemy import select

    from bifrost_core.projects.models import Sequence, Shot

    ids = set(shot_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(Shot.id, Sequence.code, Shot.code)
        .join(Sequence, Sequence.id == Shot.sequence_id)
        .where(Shot.id.in_(ids))
    )
    return {shot_id: f"{sequence_code}/{shot_code}" for shot_id, sequence_code, shot_code in rows}


def asset_codes(session: Session, asset_ids: Iterable[int]) -> dict[int, str]:
    from sqlalchemy import select

    from bifrost_core.assets.models import Asset

    ids = set(asset_ids)
    if not ids:
        return {}
    return dict(session.execute(select(Asset.id, Asset.code).where(Asset.id.in_(ids))).all())
