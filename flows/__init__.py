"""Prefect flows: orchestration only. `tasks` is imported first so Prefect's home is set up.

A flow-run process a worker started (PREFECT__FLOW_RUN_ID set) imports this before Prefect
starts the run and its span: tracing and JSON logs are set up here, when asked for
(flows/process.py).
"""

import os

import tasks  # noqa: F401
from flows.process import prepare_run_process

if os.environ.get("PREFECT__FLOW_RUN_ID"):
    prepare_run_process("bifrost-flows")
