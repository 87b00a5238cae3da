"""`bifrost server` and the warm runner, as real processes: a Prefect server on a free port,
flow commands handed over through the runner's socket, compared with the same command run
in-process, Ctrl-C forwarded, the server started on first use, and clients it must not serve.

Every server a test starts is stopped in a `finally` (`bifrost server stop`, then its pid).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.storage.blobstore import BlobStore
from bifrost_core.storage.models import Blob
from bifrost_core.versions.models import Version
from cli.errors import EXIT_CONFIG, EXIT_NOT_FOUND
from deployments.local_server import ServerFiles, free_port
from tests.support.ingest import NAMING, OPERATOR, frames, write

BIFROST = str(Path(sys.executable).parent / "bifrost")


def base_env(home: Path, port: int) -> dict[str, str]:
    """The test's environment without stray Bifrost or Prefect server settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not (key.startswith("BIFROST_") and not key.startswith("BIFROST_TEST_"))
        and key != "PREFECT_API_URL"
    }
    env.update(BIFROST_HOME=str(home), BIFROST_PREFECT_PORT=str(port), BIFROST_PREFECT_SERVER="auto")
    return env


def bifrost(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIFROST, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def stop_server(env: dict[str, str], home: Path) -> None:
    """`bifrost server stop`; whatever of it still runs (a failed stop) is killed by its pid,
    checked first to be still this server's (a pid may be reused)."""
    state_file = ServerFiles.of(home).state
    state = json.loads(state_file.read_text()) if state_file.exists() else None
    bifrost(env, "server", "stop")
    if state is None:
        return
    marks = {state["pid"]: b"cli.runner", state["server_pid"]: f"--port\0{state['port']}".encode()}
    for pid, mark in marks.items():
        with contextlib.suppress(OSError):
            if mark in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A home whose server (and runner) run for the module's tests; its environment."""
    home = tmp_path_factory.mktemp("served") / "home"
    env = base_env(home, free_port())
    try:
        started = bifrost(env, "server", "start")
        assert started.returncode == 0, started.stderr + started.stdout
        yield env
    finally:
        stop_server(env, home)


def make_production(database: Database) -> None:
    """Project DEMO (the ingest tests' naming rules) with sq010/sh010, and the admin OPERATOR."""
    from bifrost_core.projects import service as projects
    from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
    from bifrost_core.scope import SYSTEM
    from bifrost_core.users import service as users
    from bifrost_core.users.schemas import UserCreate

    with UnitOfWork(database) as uow:
        users.create_user(uow.session, actor=SYSTEM, data=UserCreate(username=OPERATOR, is_admin=True))
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


@pytest.fixture
def production(database: Database) -> None:
    make_production(database)


@pytest.fixture
def client_env(served: dict[str, str], database: Database, tmp_path: Path, production) -> dict[str, str]:
    """The served home, with this test's database and tiers, acting as OPERATOR."""
    tiers = {tier: tmp_path / "tiers" / tier for tier in ("hot", "archive")}
    for path in tiers.values():
        path.mkdir(parents=True)
    return {
        **served,
        "BIFROST_DATABASE_URL": database.url,
        "BIFROST_HOT_ROOT": str(tiers["hot"]),
        "BIFROST_ARCHIVE_ROOT": str(tiers["archive"]),
        "BIFROST_USER": OPERATOR,
    }


def served_count(env: dict[str, str]) -> int:
    """How many commands the runner has run (one log line each when it forks)."""
    log = ServerFiles.of(Path(env["BIFROST_HOME"])).runner_log
    return sum(1 for line in log.read_text().splitlines() if ": bifrost " in line)


def one_file(root: Path, text: bytes = b"one frame") -> Path:
    write(root / "sq010" / "sh010" / "plate" / "plate.1001.exr", text)
    return root


def versions(database: Database) -> int:
    with UnitOfWork(database) as uow:
        return uow.session.scalar(select(func.count()).select_from(Version))


def in_process(env: dict[str, str]) -> dict[str, str]:
    """The same client, declined by the runner (a Prefect setting it was not started with):
    the command runs in its own process, against the same server."""
    return {**env, "PREFECT_CLIENT_MAX_RETRIES": "4"}


def test_start_again_and_status(served: dict[str, str]) -> None:
    again = bifrost(served, "server", "start")
    assert again.returncode == 0
    assert "already runs" in again.stdout

    status = bifrost(served, "server", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    port = served["BIFROST_PREFECT_PORT"]
    assert report["running"] and report["api_answers"] and report["runner_answers"]
    assert report["api_url"] == f"http://127.0.0.1:{port}/api"
    assert report["ui_url"] == f"http://127.0.0.1:{port}"
    files = ServerFiles.of(Path(served["BIFROST_HOME"]))
    assert report["database"] == f"sqlite {files.prefect_home / 'prefect.db'}"
    assert stat.S_IMODE(files.socket.stat().st_mode) == 0o600
    # The UI is served (a coordinator opens it).
    import httpx

    assert httpx.get(report["ui_url"], timeout=10).status_code == 200


def test_ingest_through_the_runner_prints_what_in_process_prints(
    client_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    source = one_file(tmp_path / "delivery")
    before = served_count(client_env)
    runner = bifrost(client_env, "ingest", str(source), "-p", "DEMO", "--dry-run", "--json")
    assert served_count(client_env) == before + 1
    local = bifrost(in_process(client_env), "ingest", str(source), "-p", "DEMO", "--dry-run", "--json")
    assert served_count(client_env) == before + 1  # declined: run in its own process
    assert (runner.returncode, runner.stdout, runner.stderr) == (local.returncode, local.stdout, local.stderr)
    assert runner.returncode == 0 and json.loads(runner.stdout)["planned_new"] == 1

    for project in ("NOPE", "DEMO"):  # not found, then not allowed for an unknown user
        env = client_env if project == "NOPE" else {**client_env, "BIFROST_USER": "stranger"}
        runner = bifrost(env, "ingest", str(source), "-p", project)
        local = bifrost(in_process(env), "ingest", str(source), "-p", project)
        assert (runner.returncode, runner.stdout, runner.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        )
        assert runner.returncode in (3, 6) and runner.stderr.startswith("error: ")
        assert len(runner.stderr.splitlines()) == 1

    done = bifrost(client_env, "ingest", str(source), "-p", "DEMO", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    created = json.loads(done.stdout)["created"]
    assert [item["number"] for item in created] == [1]
    assert versions(database) == 1
    assert recorded_ingest_runs(client_env) >= 1


def recorded_ingest_runs(env: dict[str, str]) -> int:
    """Completed runs of the ingest flow on the persistent server, read with Prefect's client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    api = f"http://127.0.0.1:{env['BIFROST_PREFECT_PORT']}/api"
    with temporary_settings(updates={PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))
            ),
        )
    return len(runs)


def test_a_client_with_other_settings_gets_its_own(
    client_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    # Another database, same home: the runner's child reads the client's settings afresh.
    from bifrost_core.db import migrate

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    other = Database(other_url)
    try:
        migrate.upgrade(other)
        make_production(other)
        source = one_file(tmp_path / "delivery")
        before = served_count(client_env)
        done = bifrost({**client_env, "BIFROST_DATABASE_URL": other_url}, "ingest", str(source), "-p", "DEMO")
        assert done.returncode == 0, done.stderr
        assert served_count(client_env) == before + 1
        assert (versions(other), versions(database)) == (1, 0)
    finally:
        other.dispose()

    # Another home, the served server named by PREFECT_API_URL: no runner of its own, so in-process.
    home = tmp_path / "other-home"
    env = {
        **client_env,
        "BIFROST_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{client_env['BIFROST_PREFECT_PORT']}/api",
    }
    source = one_file(tmp_path / "delivery-2", b"another frame")
    done = bifrost(env, "ingest", str(source), "-p", "DEMO", "--json")
    assert done.returncode == 0, done.stderr
    assert served_count(client_env) == before + 1
    assert versions(database) == 1
    assert not ServerFiles.of(home).state.exists()


def test_ctrl_c_reaches_the_command(client_env: dict[str, str], database: Database, tmp_path: Path) -> None:
    source = tmp_path / "delivery"
    # Large enough that the copy is still running when the test sees its temporary file.
    write(source / "sq010" / "sh010" / "plate" / "plate.mov", os.urandom(1 << 20) * 256)
    tier = Path(client_env["BIFROST_HOT_ROOT"])
    before = served_count(client_env)
    client = subprocess.Popen(
        [BIFROST, "ingest", str(source), "-p", "DEMO"],
        env=client_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and client.poll() is None:
            if (tier / "tmp").is_dir() and any((tier / "tmp").iterdir()):
                break
            time.sleep(0.005)
        assert client.poll() is None, client.communicate()
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=120)
    finally:
        if client.poll() is None:
            client.kill()
    assert served_count(client_env) == before + 1
    # As an interrupted command in a shell: 130, or ended by SIGINT itself.
    assert client.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err.decode()
    log = ServerFiles.of(Path(client_env["BIFROST_HOME"])).runner_log.read_text().splitlines()
    child = int(
        next(line for line in reversed(log) if ": bifrost ingest" in line).split("pid ")[1].split(":")[0]
    )
    assert not Path(f"/proc/{child}").exists()
    # Nothing half-written: every blob at its final path is whole, every version's blobs are
    # there (the interrupt may land after the version's commit: then it is whole).
    store = BlobStore(tier)
    for info in store.iter_blobs():
        assert store.rehash(info.digest) == info.digest
    with UnitOfWork(database) as uow:
        for digest in uow.session.scalars(select(Blob.hash)):
            assert store.rehash(digest) == digest


# SQLite only: what is tested is the server's start (two minutes on a busy machine); the
# database behind commands served by a runner is covered on both by the tests above.
@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_the_first_flow_command_starts_the_server(database: Database, tmp_path: Path, production) -> None:
    home = tmp_path / "home"
    env = {
        **base_env(home, free_port()),
        "BIFROST_DATABASE_URL": database.url,
        "BIFROST_HOT_ROOT": str(tmp_path),
        "BIFROST_USER": OPERATOR,
    }
    frames(tmp_path / "delivery" / "sq010" / "sh010" / "plate", "plate", 1001, 1002)
    try:
        first = bifrost(env, "ingest", str(tmp_path / "delivery"), "-p", "DEMO", "--json")
        assert first.returncode == 0, first.stderr
        assert "started the Prefect server" in first.stderr and "bifrost server stop" in first.stderr
        assert len(json.loads(first.stdout)["created"]) == 1
        assert bifrost(env, "server", "status").returncode == 0
        second = bifrost(env, "ingest", str(tmp_path / "delivery"), "-p", "DEMO", "--json")
        assert second.returncode == 0 and second.stderr == ""  # said once
        assert served_count(env) == 2
    finally:
        stop_server(env, home)
    assert not ServerFiles.of(home).state.exists()


def test_stale_state_stop_when_down_and_a_taken_port(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = base_env(home, port)
    files = ServerFiles.of(home)
    files.root.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    files.state.write_text(json.dumps({"pid": gone.pid, "server_pid": gone.pid}))

    status = bifrost(env, "server", "status")
    assert status.returncode == EXIT_NOT_FOUND
    assert "no Prefect server runs" in status.stdout
    assert not files.state.exists()  # the stale file is gone
    stop = bifrost(env, "server", "stop")
    assert (stop.returncode, stop.stdout.startswith("no Prefect server runs")) == (0, True)

    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        start = bifrost(env, "server", "start")
    assert start.returncode == EXIT_CONFIG
    assert (
        start.stderr
        == f"error: port {port} is in use by another program: set BIFROST_PREFECT_PORT to a free port\n"
    )
    assert not files.state.exists()


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_a_client_that_disappears_takes_its_command_along(
    client_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    source = one_file(tmp_path / "delivery")
    log = ServerFiles.of(Path(client_env["BIFROST_HOME"])).runner_log
    before = served_count(client_env)
    client = subprocess.Popen(
        [BIFROST, "ingest", str(source), "-p", "DEMO"],
        env=client_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while served_count(client_env) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        line = next(line for line in reversed(log.read_text().splitlines()) if ": bifrost ingest" in line)
        child = int(line.split("pid ")[1].split(":")[0])
        # Held still, the command cannot finish first however fast it is: what ends it is the
        # runner's SIGTERM, sent when the client's connection closes, delivered on SIGCONT.
        os.kill(child, signal.SIGSTOP)
        client.kill()  # kill -9: the client can forward nothing, its connection just closes
    finally:
        client.wait(60)
    deadline = time.monotonic() + 60
    while not _pending(child, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(child, signal.SIGCONT)
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists()
    assert f"pid {child}: exit -{signal.SIGTERM.value}," in log.read_text()


def _pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits for the (stopped) process `pid` (/proc's pending masks)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return False
    masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & (1 << (signum - 1)) for mask in masks)


def test_what_the_runner_declines(tmp_path: Path) -> None:
    from cli.forkserver import MAX_CHILDREN
    from cli.runner import Runner, prefect_view

    runner = Runner(tmp_path / "home", 4200)
    env = {"PREFECT_X": "1"}
    runner.expected = prefect_view(env, runner.api_url, runner.home)
    assert runner._refuses({"env": env, "cwd": str(tmp_path)}) is None
    assert runner._refuses({"env": {**env, "BIFROST_DEBUG": "1"}, "cwd": str(tmp_path)})  # console level
    assert runner._refuses({"env": {**env, "PREFECT_API_URL": "http://elsewhere/api"}, "cwd": str(tmp_path)})
    (tmp_path / ".env").write_text("PREFECT_LOGGING_LEVEL=DEBUG\n")
    assert runner._refuses({"env": env, "cwd": str(tmp_path)}) == "its folder has Prefect settings (.env)"
    (tmp_path / ".env").unlink()
    runner.children = dict.fromkeys(range(MAX_CHILDREN))  # type: ignore[arg-type]
    assert runner._refuses({"env": env, "cwd": str(tmp_path)}) == f"{MAX_CHILDREN} commands already run"


def test_a_busy_prefect_server_counts_as_up() -> None:
    """A server that accepts but takes a second and a half to answer its health check (a
    2-core host running flows) is up for the CLI and `bifrost worker`, not "does not answer"
    (which exited 7, or started another server beside it); a port nobody listens on is not."""
    import http.server
    import threading

    from cli.runner import _someone_answers, prefect_answers

    class SlowHealth(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert prefect_answers(f"http://127.0.0.1:{port}/api")
        assert _someone_answers(str(port))
    finally:
        server.shutdown()
        server.server_close()
    nobody = free_port()
    assert not prefect_answers(f"http://127.0.0.1:{nobody}/api")
    assert not _someone_answers(str(nobody))
