"""Bad input: one `error: ...` line on stderr, a documented non-zero exit, nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from typer.testing import CliRunner

from bifrost_core.projects import service as projects_service
from cli.errors import EXIT_CONFIG, EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNAVAILABLE
from cli.main import app

SHOT = ("shot", "create", "DEMO", "SQ010", "SH020")

CASES = [
    # duplicate codes
    (("project", "create", "DEMO"), EXIT_CONFLICT, "project 'DEMO' already exists"),
    (("sequence", "create", "DEMO", "SQ010"), EXIT_CONFLICT, "sequence 'SQ010' already exists"),
    (
        ("shot", "create", "DEMO", "SQ010", "SH010"),
        EXIT_CONFLICT,
        "shot 'SH010' already exists in sequence 'SQ010'",
    ),
    (("asset", "create", "DEMO", "hero", "--type", "prop"), EXIT_CONFLICT, "asset 'hero' already exists"),
    (("task", "create", "DEMO", "SQ010/SH010", "anim"), EXIT_CONFLICT, "task 'anim' already exists on shot"),
    # unknown project / sequence / entity
    (("shot", "list", "XYZ"), EXIT_NOT_FOUND, "project 'XYZ' not found"),
    (("sequence", "create", "XYZ", "SQ020"), EXIT_NOT_FOUND, "project 'XYZ' not found"),
    (("shot", "create", "DEMO", "SQ999", "SH020"), EXIT_NOT_FOUND, "sequence 'SQ999' not found"),
    (("shot", "show", "DEMO", "SQ010", "SH999"), EXIT_NOT_FOUND, "shot 'SH999' not found"),
    (("casting", "cast", "DEMO", "SQ010", "SH010", "ghost"), EXIT_NOT_FOUND, "asset 'ghost' not found"),
    (("casting", "uncast", "DEMO", "SQ010", "SH010", "nope"), EXIT_NOT_FOUND, "asset 'nope' not found"),
    (
        ("task", "create", "DEMO", "SQ010/SH010", "comp", "--assignee", "nobody"),
        EXIT_NOT_FOUND,
        "user 'nobody'",
    ),
    (("task", "show", "DEMO", "SQ010/SH010", "comp"), EXIT_NOT_FOUND, "task 'comp' not found on shot"),
    (("version", "show", "DEMO", "SQ010/SH010", "anim"), EXIT_NOT_FOUND, "no versions of task 'anim'"),
    # values out of range
    (
        (*SHOT, "--frame-in", "1100", "--frame-out", "1001"),
        EXIT_INVALID,
        "frame in (1100) is after frame out (1001)",
    ),
    ((*SHOT, "--handles", "-8"), EXIT_INVALID, "handles_in: Input should be greater than or equal to 0"),
    ((*SHOT, "--handles-out", "-1"), EXIT_INVALID, "handles_out: Input should be greater than or equal to 0"),
    ((*SHOT, "--cut-in", "50", "--cut-out", "10"), EXIT_INVALID, "cut in (50) is after cut out (10)"),
    (("project", "create", "bad code!"), EXIT_INVALID, "code: String should match pattern"),
    # control characters: stored by SQLite, refused by PostgreSQL, so refused before either
    (
        ("sequence", "create", "DEMO", "SQ020", "--name", "a\x00b"),
        EXIT_INVALID,
        "name: control character U+0000 is not allowed",
    ),
    (
        (*SHOT, "--description", "line\x1bone"),
        EXIT_INVALID,
        "description: control character U+001B is not allowed (only tab, newline and carriage return are)",
    ),
    (("project", "create", "NEW", "--fps", "fast"), EXIT_INVALID, "fps: Input should be a valid decimal"),
    (
        ("task", "create", "DEMO", "hero", "model", "--due", "someday"),
        EXIT_INVALID,
        "due_date: Input should be",
    ),
    (("casting", "list", "DEMO", "--shot", "SH010"), EXIT_INVALID, "--shot takes SEQUENCE/SHOT"),
    # workflow
    (
        ("task", "set-status", "DEMO", "SQ010/SH010", "anim", "approved"),
        EXIT_CONFLICT,
        "from 'wtg' to 'approved'",
    ),
    (
        ("task", "set-status", "DEMO", "SQ010/SH010", "anim", "bogus"),
        EXIT_INVALID,
        "unknown task status 'bogus'",
    ),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(case[0]) for case in CASES])
def test_bad_input_is_one_line_and_writes_nothing(production, row_counts, args, code, message) -> None:
    before = row_counts()
    result = production(*args, code=code)
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert row_counts() == before


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("mysql://user@localhost/bifrost", EXIT_CONFIG, "BIFROST_DATABASE_URL: unsupported database 'mysql'"),
        ("garbage", EXIT_CONFIG, "BIFROST_DATABASE_URL: not a database URL: 'garbage'"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/x", EXIT_UNAVAILABLE, "cannot reach the database at"),
    ],
)
@pytest.mark.parametrize("command", [("init",), ("project", "list"), ("project", "create", "NEW"), ("demo",)])
def test_bad_database_settings_fail_before_anything_is_written(
    bifrost, bifrost_env, monkeypatch, url, code, message, command
) -> None:
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    result = bifrost(*command, code=code)
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1
    assert not bifrost_env.exists()


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("BIFROST_DB_POOL_SIZE", "lots", ("project", "list")),
        ("BIFROST_STORAGE_OPTIONS", '{"s3://bucket": {', ("storage", "du")),
        ("BIFROST_STORAGE_OPTIONS", '{"hot": {"profile": "x"}}', ("verify",)),
    ],
)
def test_an_invalid_setting_names_its_variable(
    bifrost, bifrost_env, monkeypatch, variable, value, command
) -> None:
    monkeypatch.setenv(variable, value)
    result = bifrost(*command, code=EXIT_CONFIG)
    assert result.stderr.startswith(f"error: {variable}: ")
    assert result.stderr.count("\n") == 1
    assert not bifrost_env.exists()


def test_usage_errors_exit_2(bifrost) -> None:
    bifrost("shot", "create", "DEMO", code=2)
    bifrost("workflow", "show", "DEMO", "--kind", "render", code=2)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (IntegrityError("INSERT", {}, Exception("duplicate key value")), EXIT_CONFLICT, "conflicting write"),
        (
            OperationalError("SELECT", {}, Exception("server closed the connection")),
            EXIT_UNAVAILABLE,
            "database",
        ),
    ],
)
def test_database_errors_mid_command_become_one_line(
    bifrost, row_counts, monkeypatch, error, code, line
) -> None:
    # A concurrent writer or a dropped connection, after the service's own checks passed.
    bifrost("init")
    before = row_counts()

    def fail(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(projects_service, "create_project", fail)
    result = bifrost("project", "create", "RACE", code=code)
    assert result.stderr.startswith(f"error: {line}")
    assert str(error.orig) in result.stderr
    assert result.stderr.count("\n") == 1
    assert row_counts() == before


def test_an_unexpected_failure_is_one_line_with_the_traceback_on_request(bifrost, monkeypatch) -> None:
    from bifrost_core.projects import service

    def broken(*args, **kwargs):
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(service, "create_project", broken)
    result = bifrost("project", "create", "BUG", "--name", "Bug", code=1)
    assert result.output.strip().splitlines() == [
        "error: unexpected RuntimeError: disk controller on fire (set BIFROST_DEBUG=1 for the traceback)"
    ]
    monkeypatch.setenv("BIFROST_DEBUG", "1")
    with pytest.raises(RuntimeError, match="on fire"):
        CliRunner().invoke(app, ["project", "create", "BUG", "--name", "Bug"], catch_exceptions=False)
