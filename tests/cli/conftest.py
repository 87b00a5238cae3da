"""Fixtures for the CLI tests: an in-process runner, a database peek, a small production."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.models import Base
from cli.main import app

BIFROST = Path(sys.executable).parent / "bifrost"


@pytest.fixture
def bifrost(bifrost_env: Path) -> Callable[..., Result]:
    """`bifrost(*args)` runs the CLI in-process; it must succeed unless `code=` says otherwise;
    `env=` adds environment variables for this run only."""
    runner = CliRunner()

    def run(
        *args: object, code: int = 0, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        result = runner.invoke(app, [str(arg) for arg in args], env=env, input=input)
        # SystemExit is how every exit ends; anything else escaped the error handling.
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
        return result

    return run


def _run_bifrost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIFROST), *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


@pytest.fixture
def run_bifrost(bifrost_env: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The installed `bifrost` script in a real process, with the test's environment."""
    return _run_bifrost


@contextmanager
def _peek() -> Iterator[Session]:
    """A read-only session on the database the CLI is configured to use."""
    database = Database(load_settings().database)
    try:
        with database.session() as session:
            yield session
    finally:
        database.dispose()


@pytest.fixture
def peek(bifrost_env: Path) -> Callable[[], AbstractContextManager[Session]]:
    """`with peek() as session:` opens the database the CLI is configured to use."""
    return _peek


def _row_counts() -> dict[str, int]:
    with _peek() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def row_counts(bifrost_env: Path) -> Callable[[], dict[str, int]]:
    """Rows per table: equal before and after a failed command means nothing was written."""
    return _row_counts


@pytest.fixture
def production(bifrost: Callable[..., Result]) -> Callable[..., Result]:
    """Project DEMO with SQ010/SH010, the asset hero cast in it, and an anim task on the shot."""
    bifrost("init")
    bifrost("project", "create", "DEMO", "--name", "Demo")
    bifrost("sequence", "create", "DEMO", "SQ010")
    bifrost(
        "shot", "create", "DEMO", "SQ010", "SH010", "--frame-in", 1001, "--frame-out", 1100, "--handles", 8
    )
    bifrost("asset", "create", "DEMO", "hero", "--type", "character")
    bifrost("casting", "cast", "DEMO", "SQ010", "SH010", "hero")
    bifrost("task", "create", "DEMO", "SQ010/SH010", "anim", "--assignee", "admin")
    return bifrost
