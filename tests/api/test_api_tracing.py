"""One ingest followed from the API call through a real worker's run, by trace and by log.

With OTEL_TRACES_EXPORTER=console and BIFROST_LOG_JSON=1: a real `bifrost serve` starts an ingest
through its route; the run is then run in a process of its own as a process worker runs it
(`python -m prefect.engine` with the run's id, its pull step included), so that no other run
due on the shared server is taken along. The flow run's span, its task runs' spans and the
database statements of both processes are all in the request's trace, and the run's JSON log
lines, the flow's and each task's, carry the request id the API's access line has, with the
run's id, user and project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.registry import ROOT
from tests.api.test_api_flows import matching_delivery
from tests.support.world import World

pytestmark = pytest.mark.slow


def spans_in(text: str) -> list[dict]:
    """The spans the console exporter wrote into a log (one indented JSON object each)."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while (start := text.find('{\n    "name": ', position)) != -1:
        span, position = decoder.raw_decode(text, start)
        found.append(span)
    return found


def wait_for_spans(log: Path, wanted, what: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spans = spans_in(log.read_text())
        if any(wanted(span) for span in spans):
            return spans
        time.sleep(0.5)
    raise AssertionError(f"no {what} in {log}:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_flow_run_started_by_a_request_joins_its_trace_and_logs_its_id(
    serve, database, world: World, prefect_api, tmp_path
):
    url = serve(
        {
            "BIFROST_DATABASE_URL": database.url,
            "PREFECT_API_URL": prefect_api,
            "OTEL_TRACES_EXPORTER": "console",
        }
    )
    api_log = next(tmp_path.glob("serve-*.log"))
    headers = world.headers("supervisor")
    started = httpx.post(
        f"{url}/projects/{world.a.project_id}/flows/ingest/runs",
        json={"source": str(matching_delivery(tmp_path))},
        headers=headers,
        timeout=60,
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]

    engine = subprocess.run(
        [sys.executable, "-m", "prefect.engine"],
        env={
            **os.environ,
            "PREFECT_API_URL": prefect_api,
            "PREFECT__FLOW_RUN_ID": run_id,
            "BIFROST_DATABASE_URL": database.url,
            "BIFROST_HOME": str(tmp_path / "worker-home"),
            "BIFROST_CHECKOUT": str(ROOT),  # the deployment's pull step
            "OTEL_TRACES_EXPORTER": "console",
            "BIFROST_LOG_JSON": "1",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (tmp_path / "worker.log").write_text(engine.stdout + engine.stderr)
    state = httpx.get(f"{url}/flow-runs/{run_id}", headers=headers, timeout=30).json()["state"]
    assert (engine.returncode, state) == (0, "COMPLETED"), (tmp_path / "worker.log").read_text()[-3000:]

    def is_request(span: dict) -> bool:
        return (
            span["name"] == "POST /projects/{project_id}/flows/{flow}/runs"
            and span["kind"] == "SpanKind.SERVER"
        )

    api_spans = wait_for_spans(api_log, is_request, "span of the start request")
    request = next(span for span in api_spans if is_request(span))
    trace_id = request["context"]["trace_id"]
    in_request = [span for span in api_spans if span["context"]["trace_id"] == trace_id]
    # One span per request, none per ASGI message (they cost an export each and say nothing more).
    assert not [span["name"] for span in in_request if span["name"].endswith(("http send", "http receive"))]
    assert any(
        "db.system" in span["attributes"] or "db.system.name" in span["attributes"] for span in in_request
    )

    flow_spans = spans_in((tmp_path / "worker.log").read_text())
    flow_run = [
        span
        for span in flow_spans
        if span["attributes"].get("prefect.run.type") == "flow"
        and span["attributes"].get("prefect.run.id") == run_id
    ]
    assert len(flow_run) == 1, [span["name"] for span in flow_spans]
    assert flow_run[0]["context"]["trace_id"] == trace_id
    assert flow_run[0]["parent_id"] in {span["context"]["span_id"] for span in in_request}
    in_run = [span for span in flow_spans if span["context"]["trace_id"] == trace_id]
    assert any(span["attributes"].get("prefect.run.type") == "task" for span in in_run)
    assert any("db.system" in span["attributes"] or "db.system.name" in span["attributes"] for span in in_run)

    access = [
        json.loads(line)
        for line in api_log.read_text().splitlines()
        if line.startswith('{"request_id"') and '"method": "POST"' in line
    ]
    (start,) = [line for line in access if line["path"].endswith("/flows/ingest/runs")]
    assert start["status"] == 202 and start["flow_run_id"] == run_id
    assert start["user_id"] == world.user_ids["supervisor"]
    assert str(start["project_id"]) == str(world.a.project_id)
    records = [
        json.loads(line)
        for line in (tmp_path / "worker.log").read_text().splitlines()
        if line.startswith("{") and '"flow_run_id"' in line
    ]
    of_run = [record for record in records if record.get("flow_run_id") == run_id]
    assert of_run, (tmp_path / "worker.log").read_text()[-3000:]
    assert {record["bifrost_request_id"] for record in of_run} == {start["request_id"]}
    assert {(record["bifrost_user"], record["bifrost_project"]) for record in of_run} == {
        ("supervisor", "PRJA")
    }
    assert any(record["name"] == "prefect.flow_runs" for record in of_run)
    assert any(record["name"] == "prefect.task_runs" and record.get("task_run_id") for record in of_run)
