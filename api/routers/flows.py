"""Starting the registry's flows and reading their runs.

A request never runs a flow: it creates a flow run of the flow's Prefect deployment and
answers its id at once; a worker of the deployment's work pool runs it in its own process,
visible in the Prefect UI. The flows, their parameters and the permission that starts each
come from flows/registry.py, imported on first use like the flow's parameter model (derived
from its signature, which imports the flow) and Prefect: the API starts without them. The run acts as the
caller: their username is its `actor` parameter, recorded on every row and event it writes.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Ctx, CtxDep
from api.params import After, Id, Limit, Page, rows_page
from bifrost_core.errors import PermissionDenied
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.projects.service import ensure_active
from bifrost_core.runs.models import FlowRun
from bifrost_core.runs.repository import FlowRunRepository
from bifrost_core.schemas import ReadSchema
from bifrost_core.users.permissions import allowed

router = APIRouter(tags=["flows"])
START_ROUTE = "/projects/{project_id}/flows/{flow}/runs"
FlowName = Annotated[str, Path(max_length=64, description="A flow of the registry: ingest, publish, ...")]


class FlowRunRecord(ReadSchema):
    id: int
    run_id: str | None = Field(description="Prefect's run id; empty while the run is still to be started")
    project_id: int
    flow: str
    created_by: int | None
    created_at: datetime


class FlowRunRead(BaseModel):
    run_id: str
    project_id: int
    flow: str
    state: str | None = Field(description="SCHEDULED, PENDING, RUNNING, COMPLETED, FAILED, CRASHED, ...")
    state_name: str | None
    message: str | None
    summary: str | None = Field(description="The run's markdown summary, once it has written one")
    created_at: datetime


def _read(run: FlowRun, flow_run: Any, summary: str | None) -> FlowRunRead:
    state = flow_run.state
    return FlowRunRead(
        run_id=str(flow_run.id),
        project_id=run.project_id,
        flow=run.flow,
        state=state.type.value if state else None,
        state_name=state.name if state else None,
        message=state.message if state else None,
        summary=summary,
        created_at=run.created_at,
    )


def _may_read_runs(ctx: Ctx, project_id: int, flow: str | None = None) -> None:
    """The runs of a registered flow: whoever may start it. Any other run (of a flow since
    removed from the registry), and the project's list: whoever may start some flow."""
    from flows.registry import project_flows

    flows = project_flows()
    if flow in flows:
        ctx.require(flows[flow].action, project_id)
        return
    actions = sorted({item.action for item in flows.values()})
    if not any(allowed(ctx.actor, action, project_id) for action in actions):
        raise PermissionDenied("you may not read this project's flow runs: you may start none of its flows")


@router.post(START_ROUTE, response_model=FlowRunRead, status_code=202)
def start_flow(
    ctx: CtxDep,
    request: Request,
    project_id: Id,
    flow: FlowName,
    data: Annotated[dict[str, Any], Body(description="The flow's parameters but actor and project")],
) -> Response:
    """Start a run of a flow (its parameters: `bifrost flow list`, or the Prefect UI's form);
    answers the run id at once. With an Idempotency-Key, a retry never starts a second run."""
    from deployments.runs import start_run
    from flows.registry import project_entry

    flow_entry = project_entry(flow)
    # A project the caller cannot see is a 404 here; whether they may start the flow is the
    # record's own check (bifrost_core.runs.service.record_run), before anything is written.
    project = ensure_active(
        ProjectRepository(ctx.session, ctx.actor).get(project_id), doing="ingest or publish"
    )
    body = flow_entry.body_model().model_validate(data)
    parameters = flow_entry.parameters_model()(
        actor=ctx.actor.username, project=project.code, **body.model_dump(exclude_unset=True)
    ).model_dump(mode="json", exclude_unset=True)
    # api/deps.py has checked the key and claimed it in this transaction, which start_run
    # commits with the pending record before Prefect is asked (the outbox).
    key = request.headers.get("idempotency-key")
    run, flow_run = start_run(
        ctx.session,
        actor=ctx.actor,
        project_id=project_id,
        entry=flow_entry,
        parameters=parameters,
        request_key=None if key is None else f"{ctx.actor.user_id}:{key}",
        request_id=request.state.request_id,
    )
    request.state.flow_run_id = str(flow_run.id)  # in the access line: the call and its run, joined
    return ctx.done(_read(run, flow_run, summary=None), 202)


@router.get("/projects/{project_id}/flow-runs", response_model=Page[FlowRunRecord])
def list_flow_runs(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    """The project's runs, however they were started, oldest first (states: see each run)."""
    ctx.see_project(project_id)
    _may_read_runs(ctx, project_id)
    repository = FlowRunRepository(ctx.session, ctx.actor)
    condition = FlowRun.project_id == project_id
    return ctx.respond(rows_page(repository, FlowRunRecord, condition, after=after, limit=limit))


@router.get("/flow-runs/{run_id}", response_model=FlowRunRead)
def get_flow_run(ctx: CtxDep, run_id: Annotated[UUID, Path()]) -> Response:
    """A run's state and, once written, its markdown summary."""
    from deployments.runs import prefect_api, read

    run = FlowRunRepository(ctx.session, ctx.actor).by_run_id(str(run_id))
    _may_read_runs(ctx, run.project_id, run.flow)
    with prefect_api():
        flow_run, summary = read(run_id)
    return ctx.respond(_read(run, flow_run, summary=summary))


def document_flows(schema: dict[str, Any]) -> None:
    """In the OpenAPI document, one start route per project flow of the registry with that
    flow's own body replaces the generic one: /docs, clients and the schema-driven tests see
    each flow's fields and limits (studio-wide flows have no route: they run on schedules,
    from the Prefect UI or `bifrost flow run`). Done when the document is first asked for
    (it imports the flows)."""
    from flows.registry import project_flows

    generic = schema["paths"].pop(START_ROUTE)["post"]
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, entry in sorted(project_flows().items()):
        body = entry.body_model().model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[body["title"]] = body
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"start_{name}_run"
        operation["summary"] = f"Start a {name} run: {entry.description}"
        operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "flow"]
        reference = {"$ref": f"#/components/schemas/{body['title']}"}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": reference}}}
        schema["paths"][START_ROUTE.replace("{flow}", name)] = {"post": operation}
