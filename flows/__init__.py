"""Prefect flows: orchestration only. `tasks` is imported first so Prefect's home is set up."""

import tasks  # noqa: F401
