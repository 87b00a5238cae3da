"""The warm engine of a worker (cli/warm_engine.py) and its thin client (cli/engine_client.py),
as processes: an engine serving on a socket, clients started as the process worker starts
them. The engine's Prefect API is a socket that accepts and never answers, so a run handed
over with a well-formed id waits in its child (reading the run) until the test ends it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse

from cli.forkserver import ping
from cli.warm_engine import WarmJobConfiguration, module_entrypoint
from deployments.flows import PULL_STEPS
from flows.registry import ROOT
from tests.support.farm import alive

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the warm engine is Linux-only")


@dataclass
class Engine:
    process: subprocess.Popen
    socket_path: Path
    log: Path
    env: dict[str, str]  # a run's environment, as the worker gives it to the client

    def client(self, folder: Path, **env: str) -> subprocess.Popen:
        folder.mkdir(exist_ok=True)
        return subprocess.Popen(
            [sys.executable, "-m", "cli.engine_client"],
            env={**self.env, **env},
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def forked_for(self, run_id: str, timeout: float = 60) -> int:
        """The pid of the child the engine forked for this run (from its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                if line.endswith(f": flow run {run_id}"):
                    return int(line.split("pid ")[1].split(":")[0])
            time.sleep(0.05)
        raise AssertionError(f"no child for {run_id}: {self.log.read_text()}")

    def exit_of(self, pid: int, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines():
                if f"pid {pid}: exit " in line:
                    return line.split(": exit ")[1].split(",")[0]
            time.sleep(0.05)
        raise AssertionError(f"pid {pid} did not end: {self.log.read_text()}")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    root = tmp_path_factory.mktemp("engine")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections wait in the backlog: requests never get an answer
    env = {
        **{
            name: value for name, value in os.environ.items() if not name.startswith(("BIFROST_", "PREFECT_"))
        },
        "PREFECT_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/api",
        "PREFECT_HOME": str(root / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "BIFROST_HOME": str(root / "home"),
    }
    # What the process worker adds to a run's environment: its Prefect settings.
    settings = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from cli.warm_engine import expected_view; print(json.dumps(expected_view()))",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    run_env = {**env, **json.loads(settings.stdout.splitlines()[-1])}
    socket_path = root / "engine.sock"
    log = root / "engine.log"
    (root / "cwd").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.warm_engine", str(socket_path)],
        env=env,
        cwd=root / "cwd",
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while ping(socket_path) is None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Engine(process, socket_path, log, {**run_env, "BIFROST_WARM_ENGINE": str(socket_path)})
    finally:
        process.terminate()
        process.wait(timeout=30)
        silent.close()


def test_a_run_is_executed_by_a_forked_child_and_its_exit_code_comes_back(
    engine: Engine, tmp_path: Path
) -> None:
    client = engine.client(tmp_path / "run", PREFECT__FLOW_RUN_ID="not-a-run-id")
    _, err = client.communicate(timeout=60)
    child = engine.forked_for("not-a-run-id")
    # Prefect's engine entry point ran in the child, on the client's stderr, and exited 1.
    assert "Invalid flow run id" in err
    assert engine.exit_of(child) == "1"
    assert client.returncode == 1


def test_sigterm_to_the_client_reaches_the_child(engine: Engine, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    client = engine.client(tmp_path / "run", PREFECT__FLOW_RUN_ID=run_id)
    child = engine.forked_for(run_id)
    # The child is the engine's, in the client's folder; the client only waits.
    assert int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) == engine.process.pid
    deadline = time.monotonic() + 30  # (the log line is written at the fork, before the child moves)
    while Path(os.readlink(f"/proc/{child}/cwd")) != tmp_path / "run":
        assert time.monotonic() < deadline, os.readlink(f"/proc/{child}/cwd")
        time.sleep(0.05)
    assert b"cli.engine_client" in Path(f"/proc/{client.pid}/cmdline").read_bytes()
    client.send_signal(signal.SIGTERM)  # what Prefect's cancel sends to the process it started
    client.wait(timeout=30)
    assert engine.exit_of(child) == f"-{signal.SIGTERM.value}"
    assert client.returncode == -signal.SIGTERM  # ended as the child was


def test_a_killed_client_takes_its_child_with_it(engine: Engine, tmp_path: Path) -> None:
    run_id = str(uuid.uuid4())
    client = engine.client(tmp_path / "run", PREFECT__FLOW_RUN_ID=run_id)
    child = engine.forked_for(run_id)
    client.kill()
    client.wait(timeout=30)
    assert engine.exit_of(child) == f"-{signal.SIGKILL.value}"
    assert not alive(child)


def test_other_prefect_settings_or_no_engine_start_a_fresh_engine(engine: Engine, tmp_path: Path) -> None:
    before = engine.log.read_text()
    declined = engine.client(
        tmp_path / "a", PREFECT__FLOW_RUN_ID="declined-run", PREFECT_LOGGING_LEVEL="DEBUG"
    )
    _, err = declined.communicate(timeout=120)
    assert "warm engine: Prefect settings differ (PREFECT_LOGGING_LEVEL); starting a fresh engine" in err
    # The client became `python -m prefect.engine` itself (exec: the pid Prefect watches).
    assert "Invalid flow run id" in err and declined.returncode == 1
    # The engine's children keep its Prefect settings: a HOME they would be read under is one too.
    elsewhere = engine.client(tmp_path / "h", PREFECT__FLOW_RUN_ID="home-run", HOME=str(tmp_path))
    _, err = elsewhere.communicate(timeout=120)
    assert "warm engine: another HOME (Prefect's defaults are under it); starting a fresh engine" in err
    gone = engine.client(
        tmp_path / "b", PREFECT__FLOW_RUN_ID="no-engine-run", BIFROST_WARM_ENGINE=str(tmp_path / "none")
    )
    _, err = gone.communicate(timeout=120)
    assert "Invalid flow run id" in err and gone.returncode == 1
    assert engine.log.read_text() == before  # nothing was forked for either


def _prepared(pull_steps: list[dict], entrypoint: str, **env: str) -> WarmJobConfiguration:
    """A run's job configuration as a worker with a warm engine prepares it."""
    configuration = WarmJobConfiguration(env={"BIFROST_WARM_ENGINE": "/engine.sock", **env})
    flow_id = uuid.uuid4()
    deployment = DeploymentResponse(
        name=entrypoint, flow_id=flow_id, pull_steps=pull_steps, entrypoint=entrypoint
    )
    configuration.prepare_for_flow_run(FlowRun(flow_id=flow_id), deployment)
    return configuration


def test_a_registered_flow_with_the_checkout_pull_step_skips_the_step() -> None:
    # What the step would do is done by the worker: the run starts in the checkout, and its
    # engine loads the flow by entrypoint (the module the warm engine imported it as).
    prepared = _prepared(PULL_STEPS, "flows/render.py:render_chunk", BIFROST_CHECKOUT=str(ROOT))
    assert prepared.working_dir == ROOT
    assert prepared.env["PREFECT__FLOW_ENTRYPOINT"] == "flows/render.py:render_chunk"
    assert "cli.engine_client" in prepared.command
    assert module_entrypoint("flows/render.py:render_chunk") == "flows.render:render_chunk"
    # Anything else keeps Prefect's way: its deployment read and its pull steps run.
    other_steps = [{"prefect.deployments.steps.git_clone": {"repository": "https://example.com/b.git"}}]
    for prepared in (
        _prepared(other_steps, "flows/render.py:render_chunk", BIFROST_CHECKOUT=str(ROOT)),
        _prepared(PULL_STEPS, "elsewhere/flow.py:other", BIFROST_CHECKOUT=str(ROOT)),
        _prepared(PULL_STEPS, "flows/render.py:render_chunk", BIFROST_CHECKOUT="/another/clone"),
    ):
        assert "PREFECT__FLOW_ENTRYPOINT" not in prepared.env
        assert prepared.working_dir is None
