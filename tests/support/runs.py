"""Helpers of the flow tests: a flow run and its artifacts read back from Prefect, and the
CLI invoked in-process, and a worker process stopped."""

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
