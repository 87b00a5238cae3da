"""Issue #10 through the flows and the CLI: held-back versions in the run's summary, an
ingest where nothing matched, a bucket gone mid-run (defects 6, 9 and 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bifrost_core.bootstrap import initialise
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import ConfigError
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.text import escape_markdown
from cli.main import app
from tests.support.ingest import OPERATOR, frames, write
from tests.support.runs import read_run

BIFROST = Path(sys.executable).parent / "bifrost"


def invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_held_back_versions_are_in_the_runs_summary(database, production, flow_env, prefect_server, tmp_path):
    from flows.ingest import ingest

    root = tmp_path / "delivery"
    frames(root / "sq010" / "sh010" / "plate", "plate", 1001, 1003)
    os.mkfifo(root / "sq010" / "sh010" / "plate" / "plate.1004.exr")
    frames(root / "sq010" / "sh020" / "plate", "plate", 1001, 1002)
    state = ingest(actor=OPERATOR, project="DEMO", source=str(root), return_state=True)
    summary = state.result()
    assert [v.target for v in summary.created] == ["sq010/sh020 plate main"]
    assert [(held.target, held.reason) for held in summary.held_back] == [
        ("sq010/sh010 plate main", "sq010/sh010/plate/plate.1004.exr: not a regular file (a FIFO)")
    ]
    _, artifacts = read_run(prefect_server, state.state_details.flow_run_id)
    text = {artifact.key: artifact for artifact in artifacts}["ingest-demo"].data
    assert "| versions held back | 1 |" in text
    assert "## Held back (not registered)" in text
    assert (
        "- sq010/sh010 plate main: sq010/sh010/plate/plate\\.1004\\.exr: not a regular file \\(a FIFO\\)"
        in text
    )


def test_an_ingest_where_nothing_matched_fails_in_one_line(
    database, production, flow_env, prefect_server, tmp_path
):
    root = nothing_to_match(tmp_path)
    line = f"error: {NOTHING.format(root=root)}\n"
    assert invoke("ingest", root, "--project", "DEMO", "--dry-run") == (5, line)
    assert invoke("ingest", root, "--project", "DEMO", "--json") == (5, line)
    code, output = invoke("ingest", root, "--project", "DEMO")
    assert code == 5 and output.endswith(line)  # after the progress bar


def test_nothing_matched_is_one_line_in_a_terminal(bifrost_env, prefect_api, tmp_path):
    """A real process: Prefect's report of the failed run, with its traceback, stays off
    the terminal (its server has it)."""
    database = initialise(load_settings()).database
    with UnitOfWork(database) as uow:
        projects.create_project(uow.session, actor=SYSTEM, data=ProjectCreate(code="DEMO", name="Demo"))
        uow.commit()
    database.dispose()
    root = nothing_to_match(tmp_path)
    done = subprocess.run(
        [str(BIFROST), "ingest", str(root), "--project", "DEMO"],
        capture_output=True,
        text=True,
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        timeout=300,
    )
    assert (done.returncode, done.stderr) == (5, f"error: {NOTHING.format(root=root)}\n")
    assert "Traceback" not in done.stdout


NOTHING = (
    "nothing in {root} matched the naming rules of DEMO "
    "(2 files; e.g. Plates/shot10_plate.exr: no naming rule matches)"
)


def nothing_to_match(tmp_path: Path) -> Path:
    root = tmp_path / "delivery"
    write(root / "Plates" / "shot10_plate.exr", b"laid out against no rule")
    write(root / "notes.txt", b"")
    return root


def test_a_bucket_gone_during_an_ingest_fails_its_batch_once(
    database, production, flow_env, s3_endpoint, s3_settings, prefect_server, delivery, monkeypatch
):
    """A missing bucket was retried as transient, 5 s and 30 s later: now the batch runs once."""
    import boto3

    import flows.ingest
    from bifrost_core.ingest import batches
    from flows.ingest import ingest

    s3 = boto3.client("s3", **s3_endpoint.client_kwargs())
    bucket = f"gone-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    monkeypatch.setenv("BIFROST_HOT_ROOT", f"s3://{bucket}/hot")
    real_store_files = batches.store_files
    runs: list[int] = []

    def bucket_gone(*args, **kwargs):
        runs.append(1)
        if len(runs) == 1:  # planned (and checked) while it was there; gone before the copy
            s3.delete_bucket(Bucket=bucket)
        return real_store_files(*args, **kwargs)

    monkeypatch.setattr(batches, "store_files", bucket_gone)
    # Were it retried, no delay would hide it.
    monkeypatch.setattr(
        flows.ingest,
        "store_and_register",
        flows.ingest.store_and_register.with_options(retry_delay_seconds=0),
    )
    state = ingest(actor=OPERATOR, project="DEMO", source=str(delivery), return_state=True)
    assert state.is_failed()
    assert len(runs) == 1
    with pytest.raises(ConfigError, match=f"storage tier hot: bucket {bucket} does not exist"):
        state.result()
    # One clear message as the run's state, and what was done before as its summary.
    run, artifacts = read_run(prefect_server, state.state_details.flow_run_id)
    message = f"storage tier hot: bucket {bucket} does not exist (put_object hot/blobs/"
    assert run.state.message.startswith(f"ingest failed: {message}") and "\n" not in run.state.message
    text = {artifact.key: artifact for artifact in artifacts}["ingest-demo"].data
    assert text.startswith(f"**Failed: {escape_markdown(message)}")
    assert "Done before the failure" in text and "| versions created | 0 |" in text
