"""Starting flows (ingest, publish) and reading their runs.

A request never runs a flow: it creates a flow run of the flow's Prefect deployment
(`run_deployment(..., timeout=0)`) and answers its id at once; a worker of the
deployment's work pool runs it in its own process, visible in the Prefect UI. Prefect
is imported only here, on first use, so the API starts without it. The run acts as the
caller: their username is its `actor` parameter, recorded on every row and event it writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import Ctx, CtxDep
from api.params import After, Id, Limit, Page, rows_page
from bifrost_core.errors import BifrostError, NotFound
from bifrost_core.ingest.schemas import PublishRequest
from bifrost_core.jsonbounds import JsonObject
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.projects.service import ensure_active
from bifrost_core.runs import service
from bifrost_core.runs.models import FlowRun
from bifrost_core.runs.repository import FlowRunRepository
from bifrost_core.schemas import InputSchema, ReadSchema

router = APIRouter(tags=["flows"])
# flow -> (deployment "flow/deployment", name of the flow's single parameter)
DEPLOYMENTS = {"ingest": ("ingest/ingest", "params"), "publish": ("publish/publish", "request")}


class PrefectUnavailable(BifrostError):
    status_code = 503
    code = "prefect_unavailable"


class IngestRunCreate(InputSchema):
    source: str = Field(min_length=1, max_length=4096, description="Delivery folder, as the workers see it")
    tier: str = Field(default="hot", min_length=1, max_length=32)
    dry_run: bool = Field(default=False, description="Only plan: report what would be created")
    batch_files: int = Field(default=2000, ge=1, le=100_000)
    batch_megabytes: int = Field(default=4096, ge=1, le=10_000_000)


class PublishRunCreate(InputSchema):
    """A publish request; the project is the one in the path."""

    sequence: str | None = Field(default=None, max_length=64)
    shot: str | None = Field(default=None, max_length=64)
    asset: str | None = Field(default=None, max_length=64)
    task: str = Field(min_length=1, max_length=64)
    variant: str = Field(default="main", min_length=1, max_length=64)
    comment: str = Field(default="", max_length=10_000)
    files: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=100_000
    )
    frame_in: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    frame_out: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    meta: JsonObject = Field(default_factory=dict)
    tier: str = Field(default="hot", min_length=1, max_length=32)
    dry_run: bool = False


class FlowRunRecord(ReadSchema):
    id: int
    run_id: str
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


@contextmanager
def _prefect() -> Iterator[None]:
    """Prefect calls aimed at the server PREFECT_API_URL names now.

    Prefect reads its settings once, at import; the variable is read per request so the
    app follows it whoever imported Prefect first in this process.
    """
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        # Without a server Prefect would start an ephemeral one inside this worker.
        raise PrefectUnavailable("flows need a Prefect server: set PREFECT_API_URL")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _start(ctx: Ctx, project_id: int, flow: str, parameters: dict[str, Any]) -> Response:
    deployment, parameter = DEPLOYMENTS[flow]
    with _prefect():
        flow_run = _run_deployment(deployment, parameter, parameters, project_id)
    run = service.record_run(
        ctx.session, actor=ctx.actor, project_id=project_id, flow=flow, run_id=str(flow_run.id)
    )
    return ctx.done(_read(run, flow_run, summary=None), 202)


def _run_deployment(deployment: str, parameter: str, parameters: dict[str, Any], project_id: int) -> Any:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        return run_deployment(
            deployment,
            parameters={parameter: parameters},
            timeout=0,
            as_subflow=False,
            tags=["bifrost", f"bifrost-project-{project_id}"],
        )
    except ObjectNotFound:
        raise PrefectUnavailable(
            f"deployment {deployment!r} is not registered (prefect deploy --all)"
        ) from None
    except Exception as exc:  # the Prefect API is down or refused: not the caller's fault
        raise PrefectUnavailable(f"Prefect did not start the run: {type(exc).__name__}: {exc}") from None


def _read(run: FlowRun, flow_run: Any, summary: str | None) -> FlowRunRead:
    state = flow_run.state
    return FlowRunRead(
        run_id=run.run_id,
        project_id=run.project_id,
        flow=run.flow,
        state=state.type.value if state else None,
        state_name=state.name if state else None,
        message=state.message if state else None,
        summary=summary,
        created_at=run.created_at,
    )


@router.post("/projects/{project_id}/flows/ingest/runs", response_model=FlowRunRead, status_code=202)
def start_ingest(ctx: CtxDep, project_id: Id, data: IngestRunCreate) -> Response:
    """Start an ingest of a delivery folder; answers the run id at once."""
    ctx.project(project_id, "flows.ingest")
    project = ensure_active(
        ProjectRepository(ctx.session, ctx.actor).get(project_id), doing="ingest or publish"
    )
    parameters = {"actor": ctx.actor.username, "project": project.code, **data.model_dump()}
    return _start(ctx, project_id, "ingest", parameters)


@router.post("/projects/{project_id}/flows/publish/runs", response_model=FlowRunRead, status_code=202)
def start_publish(ctx: CtxDep, project_id: Id, data: PublishRunCreate) -> Response:
    """Start a publish of files to a shot's or an asset's task; answers the run id at once."""
    ctx.project(project_id, "flows.publish")
    project = ensure_active(
        ProjectRepository(ctx.session, ctx.actor).get(project_id), doing="ingest or publish"
    )
    request = PublishRequest(actor=ctx.actor.username, project=project.code, **data.model_dump())
    return _start(ctx, project_id, "publish", request.model_dump(mode="json"))


@router.get("/projects/{project_id}/flow-runs", response_model=Page[FlowRunRecord])
def list_flow_runs(ctx: CtxDep, project_id: Id, after: After = None, limit: Limit = 100) -> Response:
    """The runs started for the project through Bifrost, oldest first (states: see each run)."""
    # Everyone who may start some flow may see the project's runs.
    ctx.project(project_id, "flows.publish")
    repository = FlowRunRepository(ctx.session, ctx.actor)
    condition = FlowRun.project_id == project_id
    return ctx.respond(rows_page(repository, FlowRunRecord, condition, after=after, limit=limit))


@router.get("/flow-runs/{run_id}", response_model=FlowRunRead)
def get_flow_run(ctx: CtxDep, run_id: Annotated[UUID, Path()]) -> Response:
    """A run's state and, once written, its markdown summary."""
    run = FlowRunRepository(ctx.session, ctx.actor).by_run_id(str(run_id))
    ctx.require(f"flows.{run.flow}", run.project_id)
    with _prefect():
        flow_run, artifacts = _read_from_prefect(run_id)
    summary = artifacts[-1].data if artifacts else None
    return ctx.respond(_read(run, flow_run, summary=summary))


def _read_from_prefect(run_id: UUID) -> tuple[Any, list[Any]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(run_id)
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                    type=ArtifactFilterType(any_=["markdown"]),
                )
            )
    except ObjectNotFound:
        raise NotFound(f"flow run {run_id} is no longer known to Prefect") from None
    except Exception as exc:
        raise PrefectUnavailable(f"cannot read the run from Prefect: {type(exc).__name__}: {exc}") from None
    return flow_run, artifacts
