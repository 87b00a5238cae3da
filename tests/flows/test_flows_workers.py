"""Deployments run by real workers (processes): a worker started in another folder runs a
deployment from its clone through the pull step ($BIFROST_CHECKOUT, read on the worker);
a run whose worker host dies (worker and run killed with SIGKILL) is marked Crashed by the
server's zombie-run automation once its heartbeats stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from deployments.automations import ZOMBIE_AUTOMATION, ZOMBIE_MESSAGE, ensure_zombie_automation
from deployments.flows import ensure_pools, register
from flows.registry import FLOWS, ROOT, WORK_POOL, FlowEntry
from tests.support.ingest import OPERATOR, frames, planned, run_planned
from tests.support.runs import only_these_runs_due, read_run, stop_worker

pytestmark = pytest.mark.slow

PREFECT = Path(sys.executable).parent / "prefect"
SLEEPER = FlowEntry(
    name="sleeper",
    entrypoint="tests/flows/sample/sleeper.py:sleeper",
    action="flows.publish",
    description="Waits",
)


def start_worker(api: str, tmp_path: Path, env: dict[str, str], *, once: bool) -> subprocess.Popen:
    """A process worker of the CPU pool, started in a folder of its own (not the repository),
    in its own session so the test can kill it with everything it started, like a host dying."""
    folder = tmp_path / "worker-cwd"
    folder.mkdir(exist_ok=True)
    command = [str(PREFECT), "worker", "start", "--pool", WORK_POOL, *(["--run-once"] if once else [])]
    return subprocess.Popen(
        command,
        cwd=folder,
        env={**os.environ, "PREFECT_API_URL": api, **env},
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def due_verify_run(database, settings, tmp_path: Path):
    """A version stored, and a run of the verify deployment due: the only run due on the server."""
    from prefect.deployments import run_deployment

    run_planned(database, settings, [planned(frames(tmp_path / "src", "plate", 1001, 1002))])
    ensure_pools({WORK_POOL})
    register([FLOWS["verify"]])
    run = run_deployment("verify/verify", parameters={"actor": OPERATOR}, timeout=0)
    only_these_runs_due([str(run.id)])
    return run


def wait_for_state(run_id, wanted: set[str], log: Path, timeout: float = 300):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if run.state and run.state.type.value in wanted:
                return run
            time.sleep(1)
    raise AssertionError(f"run {run_id} never reached {wanted}: {run.state}\n{log.read_text()[-3000:]}")


# A worker on another host shares a studio's PostgreSQL (the pull step is what is tested here).
@pytest.mark.parametrize("database", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_worker_elsewhere_runs_the_deployment_from_its_checkout(
    database, production, settings, flow_env, prefect_server, tmp_path
) -> None:
    from prefect.deployments import run_deployment

    run = due_verify_run(database, settings, tmp_path)
    worker = start_worker(prefect_server, tmp_path, {**flow_env, "BIFROST_CHECKOUT": str(ROOT)}, once=True)
    try:
        done = wait_for_state(run.id, {"COMPLETED", "FAILED", "CRASHED"}, tmp_path / "worker.log")
    finally:
        worker.wait(timeout=120)
    assert done.state.type.value == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    _, artifacts = read_run(prefect_server, run.id)
    summary = {item.key: item.data for item in artifacts}["verify-studio"]
    assert "# Verify: OK" in summary and "2 checked" in summary

    # A worker without BIFROST_CHECKOUT: its run's pull step has no folder to go to.
    lost = run_deployment("verify/verify", parameters={"actor": OPERATOR}, timeout=0)
    only_these_runs_due([str(lost.id)])
    worker = start_worker(prefect_server, tmp_path, flow_env, once=True)
    try:
        ended = wait_for_state(lost.id, {"COMPLETED", "FAILED", "CRASHED"}, tmp_path / "worker.log")
    finally:
        worker.wait(timeout=120)
    assert ended.state.type.value != "COMPLETED"


def test_a_run_whose_host_died_is_marked_crashed(prefect_server, tmp_path) -> None:
    """Worker and run killed together (no one left to report the end): the automation marks
    the run Crashed once its heartbeats stop. Its window here, 40 s, is shorter than the
    real one but longer than the run's heartbeat period (30 s): a live run would not be
    taken for a zombie."""
    from prefect.deployments import run_deployment

    ensure_pools({WORK_POOL})
    register([SLEEPER])
    ensure_zombie_automation(within=timedelta(seconds=40))
    worker = None
    try:
        run = run_deployment("sleeper/sleeper", parameters={"seconds": 600}, timeout=0)
        only_these_runs_due([str(run.id)])
        env = {"BIFROST_CHECKOUT": str(ROOT), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
        worker = start_worker(prefect_server, tmp_path, env, once=False)
        wait_for_state(run.id, {"RUNNING"}, tmp_path / "worker.log")
        # Past the run's heartbeat that follows its Running state, so one heartbeat arms the trigger.
        wait_for_heartbeats(prefect_server, run.id, 2)
        kill_host(worker, run.id)
        crashed = wait_for_state(
            run.id, {"CRASHED", "COMPLETED", "FAILED"}, tmp_path / "worker.log", timeout=180
        )
        assert crashed.state.type.value == "CRASHED"
        assert crashed.state.message == ZOMBIE_MESSAGE
    finally:
        if worker is not None:
            kill_host(worker, run.id)  # again, in case the test stopped before it
        remove_zombie_automation()


def remove_zombie_automation() -> None:
    """Gone again: with its window, the session's later in-process runs (Prefect's default
    heartbeat, 180 s) could be taken for zombies."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(ZOMBIE_AUTOMATION):
            client.delete_automation(automation.id)


def wait_for_heartbeats(api: str, run_id, count: int, timeout: float = 120) -> None:
    import httpx

    body = {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
        },
        "limit": 50,
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.post(f"{api}/events/filter", json=body, timeout=10).json()["events"]
        if len(found) >= count:
            return
        time.sleep(1)
    raise AssertionError(f"fewer than {count} heartbeats from run {run_id}")


def kill_host(worker: subprocess.Popen, run_id) -> None:
    """SIGKILL the worker, everything in its session, and the run's process (Prefect starts
    it in a session of its own), as when their host dies."""
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    doomed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == worker.pid or marker in (entry / "environ").read_bytes().split(
                b"\0"
            ):
                doomed.append(int(entry.name))
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    worker.wait(timeout=30)


def test_a_bifrost_worker_serves_metrics_of_the_runs_it_ran(
    database, production, settings, flow_env, prefect_server, tmp_path
) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from tests.support.services import free_port

    run = due_verify_run(database, settings, tmp_path)
    port = free_port()
    bifrost = str(Path(sys.executable).parent / "bifrost")
    worker = subprocess.Popen(
        [bifrost, "worker", "--pool", WORK_POOL, "--host", "metrics-host", "--metrics-port", str(port)],
        env={**os.environ, **flow_env, "PREFECT_API_URL": prefect_server},
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        done = wait_for_state(run.id, {"COMPLETED", "FAILED", "CRASHED"}, tmp_path / "worker.log")
        assert done.state.type.value == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
        deadline = time.monotonic() + 60
        while True:  # the run's end is counted once its process has been waited for
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            samples = {
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
            if samples.get(("bifrost_worker_runs_total", (("outcome", "completed"),))) == 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.5)
        info = ("bifrost_worker_info", (("gpus", "0"), ("host", "metrics-host"), ("pool", WORK_POOL)))
        assert samples[info] == 1
        assert samples[("bifrost_worker_runs_running", ())] == 0
        assert samples[("bifrost_worker_run_duration_seconds_count", ())] == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def start_bifrost_worker(
    api: str, tmp_path: Path, host: str, *, query_seconds: int
) -> tuple[subprocess.Popen, Path]:
    """`bifrost worker` of the CPU pool polling every `query_seconds`, in a session of its own
    (stop_worker ends it with its engine and runs); the process and its log."""
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "bifrost"), "worker", "--pool", WORK_POOL, "--host", host],
        env={
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
            "BIFROST_CHECKOUT": str(ROOT),
        },
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return worker, log


def test_a_bifrost_worker_takes_a_run_scheduled_between_its_polls(prefect_server, tmp_path) -> None:
    """`bifrost worker` polls the moment a run of its pool is scheduled (the server's events),
    not only every PREFECT_WORKER_QUERY_SECONDS: with polls ten minutes apart, a run scheduled
    after the first poll is taken all the same. A run is scheduled again every 15 s until one
    is taken, so the worker's subscription opening late cannot fail the test."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    ensure_pools({WORK_POOL})
    register([SLEEPER])
    only_these_runs_due([])
    worker, log = start_bifrost_worker(prefect_server, tmp_path, "woken-host", query_seconds=600)
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while not client.read_workers_for_work_pool(WORK_POOL):
                assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
            time.sleep(5)  # past its first poll, which found nothing to run
            runs, taken = [], None
            deadline = time.monotonic() + 240
            while taken is None:
                assert time.monotonic() < deadline, f"no run taken in 240 s\n{log.read_text()[-3000:]}"
                runs.append(run_deployment("sleeper/sleeper", parameters={"seconds": 0}, timeout=0).id)
                for _ in range(15):
                    states = {run_id: client.read_flow_run(run_id).state for run_id in runs}
                    if taken := next(
                        (run_id for run_id, s in states.items() if s and s.type.value != "SCHEDULED"), None
                    ):
                        break
                    time.sleep(1)
        only_these_runs_due([str(taken)])  # the worker stops with nothing left to take
        ended = wait_for_state(taken, {"COMPLETED", "FAILED", "CRASHED"}, log, timeout=180)
        assert ended.state.type.value == "COMPLETED", log.read_text()[-3000:]
    finally:
        stop_worker(worker, timeout=60)
        only_these_runs_due([])


def test_a_bifrost_worker_stopped_while_starting_runs_exits_and_marks_them_crashed(
    prefect_server, tmp_path
) -> None:
    """SIGTERM to `bifrost worker` (its process alone, as `kill` or a service manager sends it)
    the moment it has taken runs: it exits, their processes with it, and the runs it had not
    finished are Crashed, not left Pending or Running. (A KeyboardInterrupt raised by the
    signal inside the worker's event loop once left it alive and polling no more.)"""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    ensure_pools({WORK_POOL})
    register([SLEEPER])
    only_these_runs_due([])
    worker, log = start_bifrost_worker(prefect_server, tmp_path, "gone-host", query_seconds=1)
    try:
        runs = [run_deployment("sleeper/sleeper", parameters={"seconds": 600}, timeout=0).id for _ in "abc"]
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 180
            while all(client.read_flow_run(run_id).state.type.value == "SCHEDULED" for run_id in runs):
                assert time.monotonic() < deadline and worker.poll() is None, log.read_text()[-3000:]
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0, log.read_text()[-3000:]
            left = subprocess.run(
                ["ps", "-o", "pid=,args=", "-g", str(worker.pid)], capture_output=True, text=True
            ).stdout
            assert left.strip() == "", left
            states = {run_id: client.read_flow_run(run_id).state for run_id in runs}
        taken = {run_id: state for run_id, state in states.items() if state.type.value != "SCHEDULED"}
        assert taken, states
        for state in taken.values():
            assert state.type.value == "CRASHED", (states, log.read_text()[-3000:])
            assert "gone-host" in state.message and "stopped before the run ended" in state.message
    finally:
        stop_worker(worker, timeout=10)
        only_these_runs_due([])
