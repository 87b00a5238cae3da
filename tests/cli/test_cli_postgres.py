"""The CLI against the real PostgreSQL: `bifrost init` on a new database, then the core create/list path."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, inspect

from cli.errors import EXIT_CONFIG, EXIT_CONFLICT, EXIT_INVALID

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(make_pg_database, monkeypatch, bifrost_env) -> str:
    url = make_pg_database()
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    return url


def test_a_server_database_needs_init_and_is_left_untouched(bifrost, pg_url) -> None:
    result = bifrost("project", "create", "DEMO", code=EXIT_CONFIG)
    assert result.stderr == "error: the database schema is not up to date: run `bifrost init`\n"
    engine = create_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_init_then_create_and_list_on_postgres(bifrost, pg_url, row_counts) -> None:
    first = bifrost("init")
    assert "postgresql+psycopg://" in first.stdout
    assert "shown only once" in first.stdout
    assert "bft_" not in bifrost("init").stdout

    bifrost("project", "create", "PG", "--fps", "25")
    bifrost("sequence", "create", "PG", "SQ010")
    bifrost("shot", "create", "PG", "SQ010", "SH010", "--frame-in", 1001, "--frame-out", 1100, "--handles", 8)
    bifrost("asset", "create", "PG", "hero", "--type", "character")
    bifrost("casting", "cast", "PG", "SQ010", "SH010", "hero", "--count", 2)
    bifrost("task", "create", "PG", "SQ010/SH010", "anim", "--assignee", "admin")
    bifrost("task", "set-status", "PG", "SQ010/SH010", "anim", "ip")

    shots = json.loads(bifrost("shot", "list", "PG", "--json").stdout)
    assert [(s["code"], s["handles_in"], s["handles_out"]) for s in shots] == [("SH010", 8, 8)]
    assert json.loads(bifrost("project", "show", "PG", "--json").stdout)["fps"] == "25.000"
    assert [c["count"] for c in json.loads(bifrost("casting", "list", "PG", "--json").stdout)] == [2]
    assert [t["status"] for t in json.loads(bifrost("task", "list", "PG", "--json").stdout)] == ["ip"]

    before = row_counts()
    duplicate = bifrost("shot", "create", "PG", "SQ010", "SH010", code=EXIT_CONFLICT)
    assert duplicate.stderr == "error: shot 'SH010' already exists in sequence 'SQ010'\n"
    reversed_range = bifrost(
        "shot", "create", "PG", "SQ010", "SH020", "--frame-in", 10, "--frame-out", 1, code=EXIT_INVALID
    )
    assert reversed_range.stderr == "error: frame in (10) is after frame out (1)\n"
    assert row_counts() == before


def test_demo_on_postgres_twice(bifrost, pg_url, row_counts) -> None:
    bifrost("demo")
    counts = row_counts()
    assert counts["shots"] == 10
    bifrost("demo")
    # A rerun finds everything done: its two runs, ingest and review media, are recorded (a row
    # and an event each), nothing more.
    again = row_counts()
    recorded = (again.pop("flow_runs"), again.pop("events"))
    assert recorded == (counts.pop("flow_runs") + 2, counts.pop("events") + 2)
    assert again == counts
