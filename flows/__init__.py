"""Prefect flows: orchestration only. `tasks` is imported first so Prefect's home is set up.

A flow-run process a worker started (PREFECT__FLOW_RUN_ID set) imports this before Prefect
starts the run's span: tracing is configured here, when OTEL_* asks for it, so the run's spans
are recorded (bifrost_core/telemetry.py).
"""

import os

import tasks  # noqa: F401
from bifrost_core.telemetry import configure_tracing

if os.environ.get("PREFECT__FLOW_RUN_ID"):
    configure_tracing("bifrost-flows")
