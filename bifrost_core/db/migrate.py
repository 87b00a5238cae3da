"""Schema migrations (alembic), run by `bifrost init`, the services at start-up and the tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from bifrost_core.db.database import Database
from bifrost_core.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@contextmanager
def _migrating(database: Database) -> Iterator[Connection]:
    """One transaction for the whole migration; on SQLite, with foreign keys off meanwhile.

    SQLite migrations run in batch mode, which recreates a table (copy, DROP, rename). With
    foreign keys on, that DROP deletes the rows first and cascades: every shot of a recreated
    `projects` table would vanish. The PRAGMA is a no-op inside a transaction, so it is set on
    the raw connection before the transaction begins; the keys are checked before commit.
    """
    with database.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ConfigError(f"the migration leaves {len(broken)} broken foreign key(s)")
        finally:
            if sqlite:
                connection.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")


def upgrade(database: Database, revision: str = "heads") -> None:
    refuse_unknown_revisions(database)
    with _migrating(database) as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(database: Database, revision: str = "base") -> None:
    with _migrating(database) as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revisions(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def refuse_unknown_revisions(database: Database) -> None:
    """ConfigError when the database was migrated by a newer Bifrost: no migration of this
    one can move it, and running on a schema it does not know could lose data."""
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = sorted(current_revisions(database) - known)
    if unknown:
        raise ConfigError(
            f"the database's schema is at revision {', '.join(unknown)}, which this Bifrost does not know "
            f"(its newest is {', '.join(sorted(head_revisions()))}): a newer Bifrost migrated it; run that "
            "version, or point BIFROST_DATABASE_URL at another database"
        )


@cache
def code_head_revisions() -> frozenset[str]:
    """The heads of the migrations this process's code was loaded with, read once (parsing
    every migration file is a tenth of a second, and a flow run checks at its start)."""
    return frozenset(head_revisions())


def is_up_to_date(database: Database) -> bool:
    return current_revisions(database) == code_head_revisions()
