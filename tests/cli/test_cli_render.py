"""`bifrost render`: submit (GPU hosts read from a real Prefect server), list, show, cancel,
retry-failed, `--wait` following a job to its end; bad input one line, exit 5, nothing written."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from bifrost_core.config import load_settings
from bifrost_core.db.database import Database
from bifrost_core.render.models import RenderChunk, RenderJob
from cli.errors import EXIT_CONFLICT, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_UNEXPECTED
from deployments.local_server import ServerDidNotStart, free_port, local_prefect_server
from tests.support.render import gpu_host
from tests.support.services import service_missing

SUBMIT = ("render", "submit", "DEMO", "--shot", "SQ010/SH010", "--task", "anim", "--frames", "1001-1025")
COMMAND = ("--", "render", "-s", "{first}", "-e", "{last}", "-o", "{output}")


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with local_prefect_server(tmp_path_factory.mktemp("prefect-render-cli")) as url:
            yield url
    except ServerDidNotStart as exc:
        service_missing("Prefect server", str(exc))


@pytest.fixture
def farm(production, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable]:
    """The production, and a Prefect server where a host with 2 GPUs is registered."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    with gpu_host(prefect_api, "cli-host", 2):
        yield production


def test_submit_list_show_cancel(farm, peek, tmp_path):
    scene = tmp_path / "shot.blend"
    scene.write_bytes(b"scene")
    submitted = farm(
        *SUBMIT, "--chunk-size", 10, "--priority", 70, "--env", "OCIO=/a.ocio", "--scene", "shot.blend",
        "--", "blender", "-b", "{scene}", "-o", "{output}", "-s", "{first}", "-e", "{last}", "-a",
    )  # fmt: skip
    assert "submitted render job 1: 25 frames in 3 chunks" in submitted.output
    with peek() as session:
        job = session.get(RenderJob, 1)
        assert (job.scene, job.environment, job.priority) == (str(scene), {"OCIO": "/a.ocio"}, 70)
        assert job.command[:3] == ["blender", "-b", "{scene}"]

    listed = json.loads(farm("render", "list", "DEMO", "--json").output)
    assert [(j["id"], j["state"], j["progress"]["chunks"]["pending"]) for j in listed] == [(1, "queued", 3)]
    table = farm("render", "list", "DEMO", env={"COLUMNS": "200"}).output
    assert "0/25" in table and "pending 3" in table

    shown = json.loads(farm("render", "show", 1, "--json").output)
    assert [c["frames"] for c in shown["chunks"]] == ["1001-1010", "1011-1020", "1021-1025"]
    assert "1021-1025" in farm("render", "show", 1, env={"COLUMNS": "200"}).output

    assert "render job 1 is cancelled" in farm("render", "cancel", 1).output
    refused = farm("render", "retry-failed", 1, code=EXIT_CONFLICT)
    assert "no failed chunks" in refused.output or "is cancelled" in refused.output
    assert farm("render", "show", 99, code=EXIT_NOT_FOUND)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((*SUBMIT[:-2], "--frames", "1-10x-2", *COMMAND), "the step must be a positive number"),
        ((*SUBMIT[:-2], "--frames", "oops", *COMMAND), "invalid frame set part 'oops'"),
        ((*SUBMIT, "--chunk-size", 0, *COMMAND), "chunk_size"),
        ((*SUBMIT, "--pool", "bifrost-cpu", *COMMAND), "unknown pool 'bifrost-cpu'"),
        ((*SUBMIT, "--", "render", "{frame}"), "unknown placeholder {frame}"),
        ((*SUBMIT, "--", "render", "{scene}"), "uses {scene} but no scene is given"),
        ((*SUBMIT,), "the command is empty"),
        ((*SUBMIT, "--scene", "/no/such.blend", *COMMAND), "does not exist"),
        (
            (*SUBMIT, "--gpus", 3, *COMMAND),
            "no registered GPU host has that many (the most is 2, on cli-host)",
        ),
        ((*SUBMIT, "--env", "NOEQUALS", *COMMAND), "--env 'NOEQUALS': expected NAME=VALUE"),
        ((*SUBMIT, "--env", "1A=b", *COMMAND), "not a variable name"),
        ((*SUBMIT, "--asset", "hero", *COMMAND), "give the shot"),
        (("render", "submit", "DEMO", "--task", "anim", "--frames", "1", *COMMAND), "give the shot"),
    ],
)
def test_bad_input_is_one_line_exit_5_and_writes_nothing(farm, row_counts, args, says):
    before = row_counts()
    result = farm(*args, code=EXIT_INVALID)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert says in lines[0]
    assert row_counts() == before


def test_no_gpu_host_is_exit_5(production, prefect_api, monkeypatch, row_counts):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    before = row_counts()
    result = production(*SUBMIT, *COMMAND, code=EXIT_INVALID)
    assert result.output.strip() == (
        "error: no GPU host is registered (start `bifrost worker --pool bifrost-gpu --gpus N`)"
    )
    assert row_counts() == before


def test_prefect_down_is_one_line_exit_8_and_writes_nothing(production, monkeypatch, row_counts):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    before = row_counts()
    result = production(*SUBMIT, *COMMAND, code=EXIT_UNAVAILABLE)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: cannot read the GPU hosts from Prefect: ")
    assert row_counts() == before


def _farm_finishes(outcome: str) -> threading.Thread:
    """Stand-in for the farm: once job 1 is recorded, completes its chunks one by one, then
    ends the job `outcome` (a failed job with a report). Each step is its own short
    transaction (a long read would keep SQLite's old snapshot and never see the job)."""
    database = Database(load_settings().database)

    def step(*statements) -> bool:
        """Run `statements` once job 1 exists; False while it does not. SQLite may be busy with
        the command's own reads: try again."""
        for _ in range(100):
            try:
                with database.session() as session:
                    if session.get(RenderJob, 1) is None:
                        return False
                    for statement in statements:
                        session.execute(statement)
                    session.commit()
                    return True
            except OperationalError:
                time.sleep(0.1)
        raise RuntimeError("the test database stayed busy")

    def work() -> None:
        try:
            deadline = time.monotonic() + 60
            while not step() and time.monotonic() < deadline:
                time.sleep(0.1)
            for index in range(3):
                step(update(RenderChunk).where(RenderChunk.index == index).values(state="completed"))
                time.sleep(0.2)
            report = "chunk 2 (1021-1025) failed: exit 3\n  last log line" if outcome == "failed" else None
            step(update(RenderJob).values(state=outcome, report=report))
        finally:
            database.dispose()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_wait_follows_the_job_to_completion(farm, monkeypatch):
    monkeypatch.setattr("cli.render.POLL_SECONDS", 0.1)
    worker = _farm_finishes("completed")
    result = farm(*SUBMIT, "--wait", *COMMAND)
    worker.join(10)
    assert "render job 1 completed: 25 frames" in result.output
    assert "25/25" in result.output  # the progress bar's last state


def test_wait_on_a_failed_job_exits_non_zero_with_the_report(farm, monkeypatch):
    monkeypatch.setattr("cli.render.POLL_SECONDS", 0.1)
    worker = _farm_finishes("failed")
    result = farm(*SUBMIT, "--wait", "--json", *COMMAND, code=EXIT_UNEXPECTED)
    worker.join(10)
    detail = json.loads(result.stdout)
    assert (detail["state"], detail["report"]) == (
        "failed",
        "chunk 2 (1021-1025) failed: exit 3\n  last log line",
    )


def test_help_lists_the_render_commands(bifrost):
    output = bifrost("render", "--help").output
    for command in ("submit", "list", "show", "cancel", "retry-failed"):
        assert command in output


def test_ctrl_c_stops_following_not_the_job(farm, monkeypatch, peek):
    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    # The follow loop's sleep alone (cli/render.py's `time`): patching time.sleep itself made
    # any sleep in the process (a Prefect client's retry of a busy server) raise Ctrl-C where
    # nothing catches it, which took the test's whole pytest worker down.
    monkeypatch.setattr("cli.render.time", SimpleNamespace(sleep=interrupted))
    result = farm(*SUBMIT, "--wait", *COMMAND, code=130)
    assert "stopped following render job 1, which goes on (bifrost render show 1)" in result.output
    with peek() as session:
        assert session.get(RenderJob, 1).state == "queued"
