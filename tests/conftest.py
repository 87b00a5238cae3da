"""Shared fixtures: databases (SQLite and the real PostgreSQL), settings and homes.

Service-backed tests skip on a laptop without the service and fail under CI
(tests/support/services.py), so a missing server never passes silently.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bifrost_core.db import migrate
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.models import Base
from tests.support.services import PG_SERVER, service_missing

# Flow commands run on a Prefect server of their own, as before `bifrost server`: a test
# never leaves a persistent server behind (tests/cli/test_cli_server.py sets "auto" itself).
os.environ.setdefault("BIFROST_PREFECT_SERVER", "ephemeral")


# `make test` spreads the tests over processes (pytest-xdist, `--dist loadgroup`). The tests
# of one shared server (a session or module fixture that starts Prefect servers and workers)
# go to one process, so the server starts once, not once per process; the tests that empty
# the Redis test database go to one process, so none empties it under another; so do the tests
# of one checkov run (tests/infra/test_iac.py: half a minute each).
SHARED_FIXTURES = ("prefect_api", "farm", "served", "redis_url", "checkov_reports")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    loadgroup = getattr(config.option, "loadgroup", False)
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        for name in SHARED_FIXTURES:
            if definitions is not None and name in definitions.name2fixturedefs:
                # Fixtures of one name are defined per folder or module: group by definition.
                group = f"{name}:{definitions.name2fixturedefs[name][-1].baseid}"
                item.add_marker(pytest.mark.xdist_group(group))
                if loadgroup and hasattr(item, "_id"):
                    # xdist schedules by a `@group` suffix of the node id, which it writes to
                    # `_nodeid`; pytest 9.2 keeps the id in `_id`, so the suffix is put there.
                    from _pytest.nodeid import NodeId

                    item._id = NodeId.parse(f"{item.nodeid}@{group}")
                break


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """The environment as it was before each test: a command run in-process may set variables
    for its own process (`bifrost worker` sets Prefect's console level to INFO), which would
    otherwise reach every later test's subprocesses, in whatever order the tests run."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        service_missing("PostgreSQL", str(exc).strip())
    return f"{PG_SERVER}/postgres"


@pytest.fixture(scope="session")
def make_pg_database(pg_admin_url: str) -> Iterator:
    """Creates throwaway PostgreSQL databases; all are dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"bifrost_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://{PG_SERVER.split('://', 1)[1]}/{name}"

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as connection:
        for name in created:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_migrated(make_pg_database) -> Iterator[Database]:
    database = Database(make_pg_database(), pool_size=10)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    database = Database(f"sqlite:///{path}")
    migrate.upgrade(database)
    # Closing the last connection checkpoints the WAL, so the one file is the whole database.
    database.dispose()
    return path


def _empty_all(database: Database) -> None:
    # DELETE of the few rows a test leaves costs milliseconds; TRUNCATE of every table ~0.6 s.
    with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database: every test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "bifrost.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
    else:
        database = request.getfixturevalue("_pg_migrated")
        _empty_all(database)
        yield database


@pytest.fixture
def uow(database: Database) -> Iterator[UnitOfWork]:
    with UnitOfWork(database) as unit:
        yield unit


@pytest.fixture
def session(uow: UnitOfWork):
    return uow.session


@pytest.fixture
def bifrost_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BIFROST_HOME with the embedded defaults, and no stray BIFROST_* settings."""
    for name in list(os.environ):
        if (
            name.startswith("BIFROST_")
            and not name.startswith("BIFROST_TEST_")
            and name not in ("BIFROST_REQUIRE_SERVICES", "BIFROST_PREFECT_SERVER")
        ):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("BIFROST_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    from bifrost_core.config import get_settings

    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def ffmpeg_installed() -> None:
    """Debian's ffmpeg and ffprobe (`make tools`): skipped on a laptop without them, a failure in CI."""
    for program in ("ffmpeg", "ffprobe"):
        if shutil.which(program) is None:
            service_missing(f"{program} (make tools)", "not on PATH")
