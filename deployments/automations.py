"""The automations `bifrost deploy` keeps on the Prefect server, found by name (a rerun
updates them, never makes a second).

Zombie runs: a flow run whose process dies with its host (power, kill -9, an evicted pod)
stays Running for ever, as nothing is left to report its end. Prefect's recipe for
self-hosted servers (docs "How to detect and respond to zombie flows"): every running flow
run sends a heartbeat event every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds (Prefect's
default 180; `bifrost worker` sets 30), and a proactive trigger marks a run Crashed when,
after a heartbeat, no event of that run follows within the window. The window must exceed
the workers' heartbeat period (three periods: two missed heartbeats are tolerated).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

ZOMBIE_AUTOMATION = "bifrost: crash zombie flow runs"
# Every process that runs Bifrost's flows sends a heartbeat this often (PREFECT_FLOWS_HEARTBEAT_FREQUENCY:
# `bifrost worker`, the pool templates and the CLI's own runs set it). A process left at Prefect's
# default (180 s) would see its healthy runs longer than the window marked Crashed.
HEARTBEAT_SECONDS = 30
ZOMBIE_WINDOW = timedelta(seconds=3 * HEARTBEAT_SECONDS)
ZOMBIE_MESSAGE = "Marked crashed: no heartbeat from its process (the host or the process died)"


def zombie_automation(within: timedelta = ZOMBIE_WINDOW) -> Any:
    """The automation as Prefect's recipe writes it."""
    from prefect.automations import AutomationCore
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=(
            "A flow run that sent a heartbeat and then nothing (no heartbeat, no state change) "
            f"for {within.total_seconds():g} s is marked Crashed. Workers send heartbeats: "
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY (bifrost worker: 30 s)."
        ),
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            # Any event of the run disarms it: a heartbeat, or a state change whatever the
            # state's name (event names follow state names, not types).
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=ZOMBIE_MESSAGE)],
    )


def ensure_zombie_automation(within: timedelta = ZOMBIE_WINDOW) -> str:
    """Create the automation, or update the one of that name (extra copies are removed);
    returns "created", "updated" or "unchanged"."""
    from prefect.client.orchestration import get_client

    wanted = zombie_automation(within)

    async def apply() -> str:
        async with get_client() as client:
            found = await client.read_automations_by_name(ZOMBIE_AUTOMATION)
            if not found:
                await client.create_automation(wanted)
                return "created"
            first, *extra = found
            for duplicate in extra:
                await client.delete_automation(duplicate.id)
            if _same(first, wanted) and not extra:
                return "unchanged"
            await client.update_automation(first.id, wanted)
            return "updated"

    return asyncio.run(apply())


def _same(found: Any, wanted: Any) -> bool:
    fields = {"name", "description", "enabled", "trigger", "actions"}
    return found.model_dump(include=fields) == wanted.model_dump(include=fields)
