"""`bifrost ingest`, `publish`, `verify` and `storage gc|du` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest

from bifrost_core.bootstrap import initialise
from bifrost_core.config import load_settings
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.storage.blobstore import BlobStore
from tests.support.ingest import NAMING, OPERATOR, frames, planned, run_planned, write
from tests.support.runs import invoke

BIFROST = Path(sys.executable).parent / "bifrost"


def test_verify_exits_non_zero_and_names_corrupt_and_missing_blobs(
    database, production, settings, flow_env, tmp_path
):
    paths = frames(tmp_path / "src", "plate", 1001, 1003)
    run_planned(database, settings, [planned(paths)])
    assert "verified 3 blob location(s): 0 damaged" in invoke("verify").output
    store = BlobStore(settings.tier_roots["hot"])
    corrupt, missing = sorted(info.digest for info in store.iter_blobs())[:2]
    path = store.local_path(corrupt)
    path.chmod(0o644)
    path.write_bytes(b"flipped" + path.read_bytes()[7:])
    store.local_path(missing).unlink()
    result = invoke("verify", code=9)
    assert f"CORRUPT: blob {corrupt}" in result.output
    assert f"MISSING: blob {missing}" in result.output
    assert "verified 3 blob location(s): 2 damaged" in result.output
    sampled = json.loads(invoke("verify", "--sample", "2", "--json", code=9).output)
    assert sampled["checked"] == 2

    usage = json.loads(invoke("storage", "du", "--json").output)
    assert usage["projects"] == [{"project": "DEMO", "tier": "hot", "blobs": 3, "bytes": 3 * 2048}]
    gc = json.loads(invoke("storage", "gc", "--grace-hours", "0", "--json").output)
    assert gc["records_removed"] == 0  # every blob is still used by the version
    (Path(settings.tier_roots["hot"]) / "tmp" / "notes").mkdir(parents=True)
    text = invoke("storage", "gc", "--grace-hours", "0").output
    assert "skipped 1 item(s)" in text
    assert f"skipped: {settings.tier_roots['hot']}/tmp/notes: not a file this store wrote" in text

    stray = tmp_path / "stray.bin"
    stray.write_bytes(b"left by a crashed ingest")
    digest = store.put_file(stray).digest
    would = invoke("storage", "gc", "--grace-hours", "0", "--dry-run").output
    assert "would remove 0 unreferenced blob record(s), 1 blob(s) (24 bytes) from 2 tier root(s)" in would
    assert store.exists(digest)
    assert json.loads(invoke("storage", "gc", "--grace-hours", "0", "--json").output)["blobs_removed"] == 1
    assert not store.exists(digest)


def test_publish_and_ingest_commands(database, production, settings, flow_env, prefect_server, tmp_path):
    paths = frames(tmp_path / "work", "comp", 1001, 1004)
    result = invoke(
        "publish",
        *paths,
        "--project",
        "DEMO",
        "--shot",
        "sq010/sh010",
        "--task",
        "comp",
        "-m",
        "v1",
        "--json",
    )
    created = json.loads(result.output)["created"]
    assert [(v["target"], v["number"], v["files"]) for v in created] == [("sq010/sh010 comp main", 1, 4)]
    listed = json.loads(invoke("version", "files", "DEMO", "sq010/sh010", "comp", "--json").output)
    folder = "DEMO/shots/sq010/sh010/comp/main/v001"
    assert [row["published_path"] for row in listed] == [f"{folder}/comp.{n}.exr" for n in range(1001, 1005)]
    link = Path(listed[0]["locations"]["hot"])
    assert link.as_posix().endswith(f"/published/{folder}/comp.1001.exr")
    assert link.read_bytes() == Path(paths[0]).read_bytes()
    table = invoke("version", "files", "DEMO", "sq010/sh010", "comp").output
    assert "comp.1004.exr" in table and "…" not in table  # paths wrap, never cut short
    # A blob gone from the tier: publishing the same files again stores it again.
    digest = blake3.blake3(Path(paths[1]).read_bytes()).hexdigest()
    BlobStore(settings.tier_roots["hot"]).local_path(digest).unlink()
    again = invoke("publish", *paths, "--project", "DEMO", "--shot", "sq010/sh010", "--task", "comp")
    assert "already ingested 1, created 0" in again.output and "repaired 1 stored blob(s)" in again.output
    bad = invoke(
        "publish", *paths, "--project", "DEMO", "--shot", "sq010/sh010", "--task", "comp",
        "--frame-in", "1001", "--frame-out", "1010", code=5,
    )  # fmt: skip
    assert "frames 1001-1004 found, 1001-1010 expected" in bad.output
    both = invoke("publish", *paths, "--project", "DEMO", "--shot", "sq010/sh010", "--asset", "chair",
                  "--task", "comp", code=2)  # fmt: skip
    assert "either --shot" in both.output

    delivery = tmp_path / "delivery"
    frames(delivery / "sq010" / "sh020" / "plate", "plate", 1001, 1002)
    os.mkfifo(delivery / "sq010" / "sh020" / "plate" / "plate.1003.exr")
    result = invoke("ingest", delivery, "--project", "DEMO", code=5)
    # Frames 1001-1002 of 1001-1003: held back whole, with the reason (issue #10, defect 6).
    assert (
        "held back: sq010/sh020 plate main: sq010/sh020/plate/plate.1003.exr: not a regular file (a FIFO)"
        in result.output
    )
    assert "created 0" in result.output
    assert "nope is not a folder" in invoke("ingest", tmp_path / "nope", "--project", "DEMO", code=5).output


def _embedded_env(user_home: Path) -> dict[str, str]:
    """This environment without any Prefect or database setting: the embedded default."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_") and key != "BIFROST_DATABASE_URL"
    }
    return {**env, "HOME": str(user_home)}


def _bifrost(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    """The installed `bifrost` command in a process of its own."""
    return subprocess.run(
        [str(BIFROST), *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def _servers_of(prefect_home: Path) -> list[int]:
    """Pids of the processes running with this PREFECT_HOME (Linux /proc)."""
    marker = f"PREFECT_HOME={prefect_home}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:
            continue
    return pids


@pytest.fixture
def embedded_home(bifrost_env: Path) -> Path:
    """The embedded default in a fresh BIFROST_HOME (SQLite there), with a small production."""
    settings = load_settings()
    database = initialise(settings).database
    with UnitOfWork(database) as uow:
        project = projects.create_project(
            uow.session, actor=SYSTEM, data=ProjectCreate(code="DEMO", name="Demo", config=NAMING)
        )
        sequence = projects.create_sequence(
            uow.session, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010")
        )
        projects.create_shot(
            uow.session, actor=SYSTEM, sequence_id=sequence.id, data=ShotCreate(code="sh010")
        )
        uow.commit()
    database.dispose()
    return bifrost_env


@pytest.mark.slow
def test_ingest_runs_on_the_embedded_default_without_a_server(embedded_home: Path, tmp_path: Path):
    delivery = tmp_path / "delivery"
    frames(delivery / "sq010" / "sh010" / "plate", "plate", 1001, 1005)
    write(delivery / "sq010" / "sh010" / "plate" / "plate.mov", b"movie")
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = _embedded_env(user_home)
    run = _bifrost(env, "ingest", delivery, "--project", "DEMO")
    assert run.returncode == 0, run.stderr
    assert "sq010/sh010 plate main" in run.stdout and "created 1" in run.stdout
    # The command's own Prefect server kept its files in the Bifrost home, not in
    # ~/.prefect, and stopped with the command.
    assert (embedded_home / "prefect" / "prefect.db").is_file()
    assert not (user_home / ".prefect").exists()
    assert _servers_of(embedded_home / "prefect") == []
    again = _bifrost(env, "ingest", delivery, "--project", "DEMO", "--dry-run", "--json")
    assert again.returncode == 0, again.stderr
    plan = json.loads(again.stdout)
    assert (plan["known"], plan["planned_new"], plan["created"]) == (1, 0, [])


@pytest.mark.slow
def test_an_embedded_server_that_cannot_start_is_one_line_and_exit_8(embedded_home: Path, tmp_path: Path):
    delivery = tmp_path / "delivery"
    frames(delivery / "sq010" / "sh010" / "plate", "plate", 1001, 1001)
    env = _embedded_env(tmp_path)
    env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}"
    run = _bifrost(env, "ingest", delivery, "--project", "DEMO")
    assert run.returncode == 8
    assert run.stderr.startswith("error: cannot start the embedded Prefect server: the Prefect server exited")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert _servers_of(embedded_home / "prefect") == []


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the server ends with its command through Linux's prctl")
def test_the_embedded_server_ends_when_its_command_is_killed(embedded_home: Path, tmp_path: Path):
    delivery = tmp_path / "delivery"
    frames(delivery / "sq010" / "sh010" / "plate", "plate", 1001, 1001)
    command = subprocess.Popen(
        [str(BIFROST), "ingest", str(delivery), "--project", "DEMO"],
        env=_embedded_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prefect_home = embedded_home / "prefect"
    deadline = time.monotonic() + 60
    while not (servers := [pid for pid in _servers_of(prefect_home) if pid != command.pid]):
        assert command.poll() is None and time.monotonic() < deadline, "no server was started"
        time.sleep(0.05)
    command.kill()  # SIGKILL: no atexit, no cleanup of its own
    command.wait()
    deadline = time.monotonic() + 30
    while _servers_of(prefect_home):
        assert time.monotonic() < deadline, f"server {servers} outlived its command"
        time.sleep(0.1)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_log_json_makes_the_flow_log_json_lines_with_its_run_user_and_project(
    database, production, settings, flow_env, prefect_api, delivery
):
    done = subprocess.run(
        [str(BIFROST), "--log-json", "ingest", str(delivery), "--project", "DEMO", "--json"],
        env={**os.environ, **flow_env, "PREFECT_API_URL": prefect_api, "BIFROST_PREFECT_SERVER": "ephemeral"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["files"] == 17  # the output itself stays the command's JSON
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    of_run = [record for record in records if record.get("flow_run_id")]
    assert {record["name"] for record in of_run} >= {"prefect.flow_runs", "prefect.task_runs"}
    assert len({record["flow_run_id"] for record in of_run}) == 1
    assert {(record["bifrost_user"], record["bifrost_project"]) for record in of_run} == {
        (OPERATOR, "DEMO")
    }
    assert {record["bifrost_request_id"] for record in of_run} == {None}  # not started by an API request
