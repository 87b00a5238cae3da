"""A worker's own Prometheus metrics (`bifrost worker --metrics-port N`): what it runs.

Served by prometheus-client's HTTP server in the worker's process at /metrics. The runs are
counted where Prefect's worker runs each flow run's infrastructure (`ProcessWorker.run`), so a
run is counted once however it was started (warm engine or a fresh interpreter).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

INFO = Gauge(
    "bifrost_worker_info", "This worker: its pool, host and GPUs (always 1)", ["pool", "host", "gpus"]
)
RUNNING = Gauge("bifrost_worker_runs_running", "Flow runs this worker runs now")
RUNS = Counter("bifrost_worker_runs", "Flow runs this worker ran, by how their process ended", ["outcome"])
DURATION = Histogram(
    "bifrost_worker_run_duration_seconds",
    "Time a flow run's process ran on this worker",
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400),
)


def serve_metrics(port: int, address: str, *, pool: str, host: str, gpus: int | None) -> None:
    INFO.labels(pool, host, str(gpus or 0)).set(1)
    start_http_server(port, addr=address)


def count_runs(worker: Any) -> None:
    """Wrap the worker's `run` (one call per flow run) with the counters above."""
    original = worker.run

    async def run(flow_run: Any, configuration: Any, task_status: Any = None) -> Any:
        RUNNING.inc()
        started = time.monotonic()
        try:
            result = await original(flow_run=flow_run, configuration=configuration, task_status=task_status)
        except BaseException:
            RUNS.labels("not_started").inc()
            raise
        finally:
            RUNNING.dec()
            DURATION.observe(time.monotonic() - started)
        RUNS.labels("completed" if result.status_code == 0 else "failed").inc()
        return result

    worker.run = run
