"""Flow and task runs of Bifrost's flows as Prometheus metrics, read from the Prefect API that
PREFECT_API_URL names.

The flows are the registry's (flows/registry.py): the figures are per registry flow, whoever
started the runs (API, CLI, schedules, triggers). A thread reads them every POLL_SECONDS, off
the request path, and `/metrics` answers with the last reading. When Prefect does not answer,
`bifrost_prefect_up` is 0 and no run figures are given (stale ones would mislead), and
`/metrics` still answers; without PREFECT_API_URL there are no Prefect figures at all.

Per flow, over the last WINDOW_SECONDS:
- runs and task runs expected to start in the window, by their state now (Prefect's history
  endpoints: one query per flow, however many runs), and their summed run time;
- a histogram of the run time of the runs that completed in the window (a gauge histogram:
  its buckets hold the window's runs, not a count since start, so PromQL reads it without
  rate()). Completed runs are fetched incrementally: each reading asks only for those that
  ended since the previous one.

Each API process reads on its own and reports the same figures: rules take their max.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger(__name__)

POLL_SECONDS = 30.0
WINDOW_SECONDS = 3600.0
TIMEOUT_SECONDS = 5.0
PAGE = 200  # the Prefect API's largest page
# A run may be stored with an end time a little before the last one seen (clocks of several
# workers, commits in flight): each reading asks again this far back, and repeats are merged.
OVERLAP = timedelta(seconds=60)
DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)


@dataclass(frozen=True)
class CompletedRun:
    flow: str
    ended: datetime
    seconds: float


class UnexpectedAnswer(Exception):
    pass


class RunCollector:
    """The Prefect figures of `flows` (registry names), read by a thread every `interval` s."""

    def __init__(
        self, flows: Iterable[str], *, interval: float = POLL_SECONDS, window: float = WINDOW_SECONDS
    ) -> None:
        self.flows = sorted(flows)
        self.interval = interval
        self.window = timedelta(seconds=window)
        self._metrics: list[Metric] = []
        self._completed: dict[str, CompletedRun] = {}  # the window's completed runs, by run id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bifrost-run-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_SECONDS + 1)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            return iter(self._metrics)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.read()
            self._stop.wait(self.interval)

    def read(self) -> None:
        """One reading: replaces the figures `collect` gives."""
        url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
        if not url:
            metrics: list[Metric] = []
        else:
            try:
                with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as client:
                    metrics = [_up(1), *self._read(client)]
            except (httpx.HTTPError, UnexpectedAnswer, ValueError, KeyError, TypeError) as exc:
                log.warning("Prefect's run figures not read from %s: %s", url, exc)
                self._completed.clear()  # read again whole once Prefect is back
                metrics = [_up(0)]
        with self._lock:
            self._metrics = metrics

    def _read(self, client: httpx.Client) -> list[Metric]:
        now = datetime.now(UTC)
        start = now - self.window
        runs, run_seconds = _history_families("flow")
        tasks, task_seconds = _history_families("task")
        for flow in self.flows:
            for kind, counts, seconds in (("flow", runs, run_seconds), ("task", tasks, task_seconds)):
                # By state type: Late and AwaitingRetry are both Scheduled, Retrying is Running.
                number: Counter[str] = Counter()
                total: Counter[str] = Counter()
                for state in _history(client, f"/{kind}_runs/history", flow, start, now):
                    number[state["state_type"].lower()] += state["count_runs"]
                    total[state["state_type"].lower()] += state["sum_estimated_run_time"]
                for state_type in sorted(number):
                    counts.add_metric([flow, state_type], number[state_type])
                    seconds.add_metric([flow, state_type], total[state_type])
        return [runs, run_seconds, tasks, task_seconds, self._durations(client, start)]

    def _durations(self, client: httpx.Client, start: datetime) -> Metric:
        names = {
            flow["id"]: flow["name"]
            for flow in _post(client, "/flows/filter", {"flows": {"name": {"any_": self.flows}}})
        }
        self._completed = {key: run for key, run in self._completed.items() if run.ended >= start}
        latest = max((run.ended for run in self._completed.values()), default=None)
        since = start if latest is None else max(start, latest - OVERLAP)
        offset = 0
        while True:
            page = _post(
                client,
                "/flow_runs/filter",
                {
                    "flows": {"name": {"any_": self.flows}},
                    "flow_runs": {
                        "state": {"type": {"any_": ["COMPLETED"]}},
                        "end_time": {"after_": since.isoformat()},
                    },
                    "sort": "END_TIME_DESC",
                    "limit": PAGE,
                    "offset": offset,
                },
            )
            for run in page:
                if run["flow_id"] in names and run["end_time"]:
                    ended = datetime.fromisoformat(run["end_time"])
                    flow = names[run["flow_id"]]
                    self._completed[run["id"]] = CompletedRun(flow, ended, run["total_run_time"])
            if len(page) < PAGE:
                break
            offset += PAGE  # newer runs ending meanwhile shift pages: repeats, merged by id
        family = GaugeHistogramMetricFamily(
            "bifrost_flow_run_duration_seconds",
            f"Run time of the flow runs that completed in the last {self.window.total_seconds():.0f} s",
            labels=["flow"],
        )
        for flow in self.flows:
            seconds = [run.seconds for run in self._completed.values() if run.flow == flow]
            buckets = [(str(float(edge)), sum(1 for s in seconds if s <= edge)) for edge in DURATION_BUCKETS]
            buckets.append(("+Inf", len(seconds)))
            family.add_metric([flow], buckets, sum(seconds))
        return family


def _history_families(kind: str) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    what = "Flow runs" if kind == "flow" else "Task runs of the flow's runs"
    return (
        GaugeMetricFamily(
            f"bifrost_{kind}_runs",
            f"{what} expected to start in the last window, by state now",
            labels=["flow", "state"],
        ),
        GaugeMetricFamily(
            f"bifrost_{kind}_runs_run_seconds",
            f"{what} expected to start in the last window: their summed run time, by state now",
            labels=["flow", "state"],
        ),
    )


def _history(client: httpx.Client, path: str, flow: str, start: datetime, end: datetime) -> list[dict]:
    """The states of `flow`'s runs (or task runs) expected to start in [start, end): one interval."""
    intervals = _post(
        client,
        path,
        {
            "history_start": start.isoformat(),
            "history_end": end.isoformat(),
            "history_interval_seconds": (end - start).total_seconds(),
            "flows": {"name": {"any_": [flow]}},
        },
    )
    return [state for interval in intervals for state in interval["states"]]


def _post(client: httpx.Client, path: str, body: dict) -> list:
    answer = client.post(path, json=body)
    if answer.status_code != 200:
        raise UnexpectedAnswer(f"{path} answered {answer.status_code}: {answer.text[:200]}")
    return answer.json()


def _up(value: int) -> Metric:
    return GaugeMetricFamily(
        "bifrost_prefect_up", "1 when the last reading of the Prefect API succeeded, else 0", value=value
    )
