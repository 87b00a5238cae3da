"""Migrations: up to head, down to base and up again, and the models match the migrated schema.

Written for any chain of revisions (heads are read from the scripts), so later migrations are
covered without touching this file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, func, inspect, select

from bifrost_core.bootstrap import open_database
from bifrost_core.config import load_settings
from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.models import Base
from bifrost_core.projects import service as projects
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM


@pytest.fixture(scope="module")
def _pg_scratch_url(make_pg_database) -> str:
    # One new PostgreSQL database for the module: each one costs a checkpoint when dropped.
    return make_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        database = Database(request.getfixturevalue("_pg_scratch_url"))
        if migrate.current_revisions(database):
            migrate.downgrade(database)  # left at head by the previous test
    yield database
    database.dispose()


def _tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names())


def _differences(database: Database, metadata: MetaData) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_upgrade_downgrade_upgrade(empty_database):
    database = empty_database
    model_tables = set(Base.metadata.tables)
    assert migrate.current_revisions(database) == set()
    assert not migrate.is_up_to_date(database)

    migrate.upgrade(database)
    assert migrate.current_revisions(database) == migrate.head_revisions()
    assert migrate.is_up_to_date(database)
    assert model_tables <= _tables(database)

    migrate.downgrade(database)
    assert migrate.current_revisions(database) == set()
    # Only alembic's own bookkeeping table may stay behind.
    assert _tables(database) <= {"alembic_version"}

    migrate.upgrade(database)
    assert migrate.is_up_to_date(database)
    assert model_tables <= _tables(database)
    assert _differences(database, Base.metadata) == []


def test_models_match_the_migrated_schema(database):
    # A model changed without a migration shows up here as a difference.
    assert _differences(database, Base.metadata) == []


def test_the_schema_comparison_notices_a_model_change(database):
    # Proves the check above is able to fail: one column more than the migrations made.
    changed = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["projects"].append_column(Column("not_migrated", Integer, nullable=True))
    differences = _differences(database, changed)
    assert [(d[0], d[3].name) for d in differences if d[0] == "add_column"] == [
        ("add_column", "not_migrated")
    ]


def test_a_database_behind_head_is_refused(empty_database, bifrost_env):
    settings = load_settings(database_url=empty_database.url)
    with pytest.raises(ConfigError, match="not up to date: run `bifrost init`"):
        open_database(settings)
    migrate.upgrade(empty_database)
    open_database(settings).dispose()


def test_a_database_migrated_by_a_newer_bifrost_is_refused_in_one_line(empty_database, bifrost_env, tmp_path):
    migrate.upgrade(empty_database)
    with empty_database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    settings = load_settings(database_url=empty_database.url)
    try:
        for attempt in (lambda: open_database(settings), lambda: migrate.upgrade(empty_database)):
            with pytest.raises(ConfigError, match="revision 9999, which this Bifrost does not know"):
                attempt()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("bifrost")), "init"],
            env={**os.environ, "BIFROST_DATABASE_URL": empty_database.url, "BIFROST_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
        )
    finally:
        with empty_database.engine.begin() as connection:
            head = max(migrate.head_revisions())
            connection.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
    assert done.returncode == 7, done.stderr
    assert done.stderr.count("\n") == 1 and "does not know" in done.stderr
    assert "Traceback" not in done.stderr


RECREATE_PROJECTS = """
import sqlalchemy as sa
from alembic import op

revision = "test_recreate_projects"
down_revision = {heads!r}
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("projects", recreate="always") as batch:
        batch.add_column(sa.Column("probe", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("projects", recreate="always") as batch:
        batch.drop_column("probe")
"""


def test_sqlite_batch_migration_keeps_child_rows(tmp_path, monkeypatch):
    # A later migration that recreates a parent table (SQLite batch mode) must not cascade-delete
    # its children: a test revision on top of the real heads recreates `projects`.
    database = Database(f"sqlite:///{tmp_path / 'bifrost.db'}")
    migrate.upgrade(database)
    with UnitOfWork(database) as uow:
        project = projects.create_project(uow.session, actor=SYSTEM, data=ProjectCreate(code="P1", name="P"))
        sequence = projects.create_sequence(
            uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
        )
        projects.create_shot(
            uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010")
        )
        uow.commit()

    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    heads = tuple(sorted(migrate.head_revisions()))
    (scripts / "versions" / "9999_test_recreate_projects.py").write_text(
        RECREATE_PROJECTS.format(heads=heads)
    )
    monkeypatch.setattr(migrate, "MIGRATIONS", scripts)

    migrate.upgrade(database)
    assert migrate.current_revisions(database) == {"test_recreate_projects"}
    assert _counts(database) == (1, 1, 1)
    migrate.downgrade(database, "-1")
    assert _counts(database) == (1, 1, 1)
    with database.engine.connect() as connection:
        # Foreign keys are enforced again once the migration is over.
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()


def _counts(database: Database) -> tuple[int, int, int]:
    with UnitOfWork(database) as uow:
        return tuple(
            uow.session.scalar(select(func.count()).select_from(m)) for m in (Project, Sequence, Shot)
        )
