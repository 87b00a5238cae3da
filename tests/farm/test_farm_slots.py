"""A chunk's GPU slots (flows/render.py HeldSlots): held on the farm's Prefect server from a
thread once taken, given back on release; a limit that does not exist is an error
the chunk sees (strict), not slots silently skipped."""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.render import HeldSlots
from tests.support.farm import Farm, slots_in_use


def test_slots_are_held_until_released(farm: Farm) -> None:
    name = "test-held-slots"
    with temporary_settings(updates={PREFECT_API_URL: farm.api_url}):
        with get_client(sync_client=True) as client:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))
        try:
            slots = HeldSlots(name, 2, lease_seconds=60)
            slots.take()
            deadline = time.monotonic() + 30
            while slots_in_use(farm.api_url, name) != 2:
                assert time.monotonic() < deadline and slots.error is None, slots.error
                time.sleep(0.1)
            slots.release()
            assert slots.error is None
            assert slots_in_use(farm.api_url, name) == 0  # given back before release() returns
        finally:
            with get_client(sync_client=True) as client:
                client.delete_global_concurrency_limit_by_name(name)


def test_a_missing_limit_is_an_error(farm: Farm) -> None:
    with temporary_settings(updates={PREFECT_API_URL: farm.api_url}):
        slots = HeldSlots("gpu:no-such-host", 1, lease_seconds=60)
        slots.take()
        slots.release()
    assert slots.error is not None and "gpu:no-such-host" in slots.error
