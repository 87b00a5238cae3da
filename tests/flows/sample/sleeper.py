"""A flow that only waits: a run that is still running when its worker's host dies
(tests/flows/test_flows_workers.py)."""

from __future__ import annotations

import time

from prefect import flow


@flow(name="sleeper")
def sleeper(seconds: float = 600) -> None:
    time.sleep(seconds)
