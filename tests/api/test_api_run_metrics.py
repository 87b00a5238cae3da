"""Flow and task runs of the registry's flows as metrics, read from a real Prefect server: runs
by flow and state, task runs, a histogram of completed runs' durations; Prefect down is
`bifrost_prefect_up 0` and `/metrics` still answers."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.run_metrics import RunCollector
from flows.registry import FLOWS
from tests.api.test_api_metrics import scrape
from tests.support.services import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

FLOW = "publish"  # a registry flow with no schedule: only this test's runs change its figures


def read(collector: RunCollector) -> dict:
    collector.read()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(collector).decode())
        for sample in family.samples
    }


def runs(samples: dict, kind: str, state: str, flow: str = FLOW) -> float:
    return samples.get((f"bifrost_{kind}_runs", (("flow", flow), ("state", state))), 0.0)


def bucket(samples: dict, le: str, flow: str = FLOW) -> float:
    return samples[("bifrost_flow_run_duration_seconds_bucket", (("flow", flow), ("le", le)))]


class Prefect:
    """Runs made and moved through their states on the server's REST API, as a worker would."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.flow_id = self._post("/flows/", {"name": FLOW})["id"]

    def _post(self, path: str, body: dict) -> dict:
        answer = self.client.post(path, json=body)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()

    def flow_run(self) -> str:
        return self._post("/flow_runs/", {"flow_id": self.flow_id, "state": {"type": "PENDING"}})["id"]

    def task_run(self, flow_run_id: str) -> str:
        body = {"flow_run_id": flow_run_id, "task_key": "metrics-test", "dynamic_key": flow_run_id,
                "name": "metrics-test", "state": {"type": "PENDING"}}  # fmt: skip
        return self._post("/task_runs/", body)["id"]

    def move(self, kind: str, run_id: str, state: str) -> None:
        answer = self._post(f"/{kind}_runs/{run_id}/set_state", {"state": {"type": state}, "force": True})
        assert answer["status"] == "ACCEPT", answer


def test_runs_by_flow_and_state_and_completed_durations(prefect_api: str, monkeypatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    collector = RunCollector(FLOWS)
    before = read(collector)
    assert before[("bifrost_prefect_up", ())] == 1

    prefect = Prefect(prefect_api)
    done, failed, running = (prefect.flow_run() for _ in range(3))
    task = prefect.task_run(done)
    for run_id in (done, failed, running):
        prefect.move("flow", run_id, "RUNNING")
    prefect.move("task", task, "RUNNING")
    time.sleep(1.2)
    prefect.move("task", task, "COMPLETED")
    prefect.move("flow", done, "COMPLETED")
    prefect.move("flow", failed, "FAILED")
    after = read(collector)

    assert after[("bifrost_prefect_up", ())] == 1
    for state, added in (("completed", 1), ("failed", 1), ("running", 1)):
        assert runs(after, "flow", state) - runs(before, "flow", state) == added, state
    assert runs(after, "task", "completed") - runs(before, "task", "completed") == 1
    seconds = ("bifrost_task_runs_run_seconds", (("flow", FLOW), ("state", "completed")))
    assert after[seconds] - before.get(seconds, 0.0) >= 1  # whole seconds on a SQLite Prefect server
    # The completed run (about 1.2 s) is in the histogram's buckets from 2.5 s on, not under 1 s.
    assert bucket(after, "1.0") == bucket(before, "1.0")
    assert bucket(after, "2.5") - bucket(before, "2.5") == 1
    assert bucket(after, "+Inf") - bucket(before, "+Inf") == 1
    gsum = ("bifrost_flow_run_duration_seconds_gsum", (("flow", FLOW),))
    assert after[gsum] - before[gsum] >= 1.2
    # Every registry flow has its histogram, and nothing of flows outside the registry is given.
    histograms = {labels for name, labels in after if name == "bifrost_flow_run_duration_seconds_gcount"}
    assert histograms == {(("flow", name),) for name in FLOWS}

    # The next reading asks only for runs ended since: the completed run is not counted twice.
    again = read(collector)
    assert bucket(again, "+Inf") == bucket(after, "+Inf")


def test_the_api_serves_prefects_figures_read_off_the_request_path(prefect_api, make_client, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    client = make_client()  # its thread reads Prefect at start, then every 30 s
    wait_for("the first reading", lambda: scrape(client.get).get(("bifrost_prefect_up", ())) == 1, timeout=30)
    samples = scrape(client.get)
    assert ("bifrost_flow_run_duration_seconds_gcount", (("flow", FLOW),)) in samples


def test_prefect_down_is_a_gauge_not_a_failed_scrape(make_client, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # nothing listens
    client = make_client()
    wait_for("the first reading", lambda: ("bifrost_prefect_up", ()) in scrape(client.get), timeout=30)
    samples = scrape(client.get)  # a 200 (scrape checks it)
    assert samples[("bifrost_prefect_up", ())] == 0
    assert not any(name.startswith(("bifrost_flow_run", "bifrost_task_run")) for name, _ in samples)


def test_without_a_prefect_server_there_are_no_prefect_figures(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    samples = read(RunCollector(FLOWS))
    assert samples == {}
