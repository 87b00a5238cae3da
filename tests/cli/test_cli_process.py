"""The installed `bifrost` script in real processes: exit codes, no tracebacks, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli.errors import EXIT_CONFIG, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_UNAVAILABLE


def test_help_lists_the_commands_and_exit_codes(run_bifrost) -> None:
    result = run_bifrost("--help")
    assert result.returncode == 0
    for command in ("init", "project", "shot", "casting", "task", "version", "workflow", "demo"):
        assert command in result.stdout
    assert "3 not found" in " ".join(result.stdout.split())


def test_create_list_and_errors_in_real_processes(run_bifrost) -> None:
    assert run_bifrost("project", "create", "DEMO").returncode == 0
    listed = run_bifrost("project", "list", "--json")
    assert listed.returncode == 0
    assert [p["code"] for p in json.loads(listed.stdout)] == ["DEMO"]

    duplicate = run_bifrost("project", "create", "DEMO")
    assert (duplicate.returncode, duplicate.stderr) == (
        EXIT_CONFLICT,
        "error: project 'DEMO' already exists\n",
    )
    missing = run_bifrost("shot", "list", "XYZ")
    assert (missing.returncode, missing.stderr) == (EXIT_NOT_FOUND, "error: project 'XYZ' not found\n")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("mysql://user@localhost/bifrost", EXIT_CONFIG),
        ("postgresql+psycopg://postgres@127.0.0.1:1/x", EXIT_UNAVAILABLE),
    ],
)
def test_bad_database_url_has_no_traceback(run_bifrost, monkeypatch, url, code) -> None:
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    result = run_bifrost("shot", "list", "DEMO")
    assert result.returncode == code
    assert result.stderr.startswith(
        "error: BIFROST_DATABASE_URL" if code == EXIT_CONFIG else "error: cannot reach"
    )
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_list_commands_do_not_import_heavy_frameworks(bifrost_env) -> None:
    # Start-up is performance: Prefect, FastAPI and uvicorn load only inside the commands that run them.
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        "runner = CliRunner()\n"
        "for args in (['--help'], ['project', 'list', '--json'], ['shot', '--help']):\n"
        "    assert runner.invoke(app, args).exit_code == 0, args\n"
        "print(sorted(m for m in ('prefect', 'fastapi', 'uvicorn', 'starlette') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
