"""Helpers of the flow tests: a flow run and its artifacts read back from Prefect, every run
a filter matches, the runs left waiting on a server deleted, the CLI invoked in-process, and
a worker process stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess

from typer.testing import CliRunner

from cli.main import app


def read_run(api: str, flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def fetch():
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return run, artifacts

    return asyncio.run(fetch())


PAGE = 200  # Prefect's most runs per answer (PREFECT_API_DEFAULT_LIMIT)


def every_flow_run(client, **filters) -> list:
    """Every run the filters match, page after page: one answer holds at most PAGE, and a
    session's server holds more (schemathesis alone starts hundreds)."""
    runs: list = []
    while page := client.read_flow_runs(**filters, offset=len(runs), limit=PAGE):
        runs.extend(page)
    return runs


def only_these_runs_due(run_ids: list[str]) -> None:
    """Delete every other run waiting on the current server (PREFECT_API_URL): a worker would
    take it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType

    waiting = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["SCHEDULED", "PENDING"]))
    )
    with get_client(sync_client=True) as client:
        for other in every_flow_run(client, flow_run_filter=waiting):
            if str(other.id) not in run_ids:
                client.delete_flow_run(other.id)


def invoke(*args: object, code: int = 0, input: str | None = None):
    result = CliRunner().invoke(app, [str(arg) for arg in args], input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}"
    return result


def stop_worker(worker: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM to the worker's session (it was started in one of its own), SIGKILL after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
