"""`bifrost worker`'s bad input: one line and its exit code, before anything starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.support.services import free_port


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--pool", "bifrost-gpu"], 5, "needs --gpus N"),
        (["--pool", "bifrost-gpu", "--gpus", "1", "--host", "a/b"], 5, "--host"),
        (["--pool", "bifrost-gpu", "--gpus", "0"], 2, "greater than or equal to 1"),
        (["--pool", "bifrost-gpu", "--gpus", "1", "--host", "h"], 7, "does not answer"),
    ],
)
def test_bad_worker_arguments(monkeypatch: pytest.MonkeyPatch, arguments, code, message) -> None:
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    result = CliRunner().invoke(app, ["worker", *arguments])
    assert result.exit_code == code, result.output
    assert message in result.output
