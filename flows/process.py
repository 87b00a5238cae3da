"""What a process that runs flows sets up before a run starts: tracing (bifrost_core/telemetry.py)
and, with BIFROST_LOG_JSON, Prefect's console logs as JSON lines.

A JSON line is Prefect's record (message, level, logger, flow_run_id, task_run_id, flow and task
run names, ...) plus what Bifrost knows of the run: `bifrost_request_id` (the API request that
started it, from the run's `bifrost.request_id` label), `bifrost_user` and `bifrost_project`
(its `actor` and `project` parameters). With the API's access line of that request (which names
the run's `flow_run_id`), one delivery is followed from the call to each file's task.
"""

from __future__ import annotations

import logging

from bifrost_core.config import load_settings
from bifrost_core.errors import ConfigError
from bifrost_core.telemetry import configure_tracing

REQUEST_LABEL = "bifrost.request_id"


class RunContextFilter(logging.Filter):
    """Adds the run's request id, user and project to each record. The engine's last lines of a
    run come after its context has closed: what the run's earlier lines had is kept by run id."""

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, tuple[str | None, str | None, str | None]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        run = context.flow_run if context is not None else None
        if run is not None:
            parameters = run.parameters
            known = (run.labels.get(REQUEST_LABEL), parameters.get("actor"), parameters.get("project"))
            self._runs[str(run.id)] = known
        else:
            known = self._runs.get(str(getattr(record, "flow_run_id", "")), (None, None, None))
        record.bifrost_request_id, record.bifrost_user, record.bifrost_project = known
        return True


def json_logs() -> None:
    """Prefect's console handlers write JSON lines with the run's context (idempotent)."""
    from prefect.logging.formatters import JsonFormatter
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(existing, RunContextFilter) for existing in handler.filters
        ):
            handler.setFormatter(JsonFormatter("default", "", "%"))
            handler.addFilter(RunContextFilter())
            # Asked for, the run's lines are wanted: a quiet command's WARNING level would hide them.
            handler.setLevel(min(handler.level or logging.INFO, logging.INFO))


def prepare_run_process(service: str) -> None:
    configure_tracing(service)
    try:
        wanted = load_settings().log_json
    except ConfigError:
        return  # the run itself reports a bad setting, in its first task
    if wanted:
        json_logs()
