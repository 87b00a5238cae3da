"""What every flow does first (`begin`, `begin_studio`) and what its run name is made from (`parameters`)."""

from __future__ import annotations

from typing import Any

from prefect.context import FlowRunContext

from bifrost_core.scope import Actor
from flows.registry import entry, project_tag
from tasks.runs import begin_run, begin_studio_run


def parameters() -> dict[str, Any]:
    """The parameters of the run being named (for a flow's `flow_run_name` callable)."""
    from prefect.runtime import flow_run

    return flow_run.parameters


def begin(flow: str, actor: str, project: str) -> Actor:
    """Tag the run with its project (runs started in the Prefect UI too, so the UI filters
    runs by project), check the actor may run `flow` there, and record the run in Bifrost.
    Returns the checked actor, for the tasks that write."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError(f"begin({flow!r}) is called from inside a flow run")
    run = context.flow_run
    tag = project_tag(project)
    if tag not in run.tags:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, tags=[*run.tags, tag])
    return begin_run(actor, project, entry(flow).action, flow, str(run.id), run.idempotency_key)


def begin_studio(flow: str, actor: str) -> Actor:
    """`begin` for a studio-wide flow (no project): check that the actor is an active admin.
    Returns the checked actor."""
    return begin_studio_run(actor, flow)
