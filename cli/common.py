"""The context every `bifrost` command runs in: settings, the database, the user it acts
as, and its one unit of work. (How commands fail: cli/errors.py; what they print:
cli/output.py.)

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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bifrost_core.config import Settings
    from bifrost_core.db.database import Database
    from bifrost_core.db.uow import UnitOfWork
    from bifrost_core.scope import Actor

# Entities are referenced by code on the command line (bifrost_core.codes turns them into rows).
ENTITY_HELP = "A shot as SEQUENCE/SHOT (e.g. SQ010/SH010) or an asset by its code."


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
