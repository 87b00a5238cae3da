"""Render jobs: submit, list, show with per-chunk progress, cancel, retry-failed.

Submitting checks the job against the GPU hosts registered on the Prefect server
(deployments/render.py, imported on first use: the API starts without Prefect) and records
it with all its chunks; the farm's render-queue deployment starts it. Nothing here runs
a render.
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import Response
from pydantic import Field

from api.deps import CtxDep
from api.params import After, Id, Limit, Page
from bifrost_core.projects.models import Project
from bifrost_core.render import service
from bifrost_core.render.models import RenderJob
from bifrost_core.render.schemas import RenderJobCreate, RenderJobDetail, RenderJobRead, RenderProgress

router = APIRouter(tags=["render"])

JobState = Literal["queued", "running", "completed", "failed", "cancelled"]


class RenderJobSummary(RenderJobRead):
    progress: RenderProgress = Field(description="Frames done of the total, chunks by state")


@router.post("/projects/{project_id}/renders", response_model=RenderJobRead, status_code=201)
def submit_render(
    ctx: CtxDep, project_id: Id, data: RenderJobCreate, background: BackgroundTasks
) -> Response:
    """Submit a render job: checked in full (frame set, placeholders, pool, scene file, GPUs per
    chunk against the registered GPU hosts), then recorded queued with all its chunks, and the
    render queue nudged to start it. With an Idempotency-Key, a retried request never submits
    twice."""
    from deployments.render import gpu_hosts

    ctx.project(project_id, "render.submit")
    job = service.submit(
        ctx.session,
        actor=ctx.actor,
        project_id=project_id,
        data=data,
        gpu_hosts=gpu_hosts,
        render_root=ctx.state.settings.render_output_root,
    )
    code = ctx.session.get(Project, project_id).code
    response = ctx.done(RenderJobRead.model_validate(job), 201)
    background.add_task(_nudge, ctx.actor.username, code)
    return response


def _nudge(username: str, project: str) -> None:
    """After the response (the job is committed): a render-queue pass over its project."""
    from deployments.render import nudge

    try:
        nudge(username, project)
    except Exception as exc:  # the queue's scheduled pass starts the job instead
        logging.getLogger(__name__).warning("render queue not nudged: %s", exc)


@router.get("/projects/{project_id}/renders", response_model=Page[RenderJobSummary])
def list_renders(
    ctx: CtxDep,
    project_id: Id,
    state: JobState | None = Query(default=None, description="Only jobs in this state"),
    after: After = None,
    limit: Limit = 100,
) -> Response:
    """The project's render jobs, oldest first, each with its progress."""
    jobs: list[RenderJob] = service.list_jobs(
        ctx.session, actor=ctx.actor, project_id=project_id, state=state, after=after, limit=limit
    )
    progress = service.progress_of(ctx.session, jobs)
    items = [
        RenderJobSummary(**RenderJobRead.model_validate(job).model_dump(), progress=progress[job.id])
        for job in jobs
    ]
    next_cursor = jobs[-1].id if len(jobs) == limit else None
    return ctx.respond(Page[RenderJobSummary](items=items, next_cursor=next_cursor))


@router.get("/renders/{render_id}", response_model=RenderJobDetail)
def get_render(ctx: CtxDep, render_id: Id) -> Response:
    """A render job with its progress and every chunk: state, attempts, host, GPU ids, start
    and end, exit code, log path and error."""
    return ctx.respond(service.job_detail(ctx.session, actor=ctx.actor, job_id=render_id))


@router.post("/renders/{render_id}/cancel", response_model=RenderJobRead)
def cancel_render(ctx: CtxDep, render_id: Id) -> Response:
    """Cancel: pending chunks never start, running ones are stopped by the farm. Cancelling a
    cancelled job changes nothing; a completed or failed one is a 409."""
    job = service.cancel(ctx.session, actor=ctx.actor, job_id=render_id)
    return ctx.done(RenderJobRead.model_validate(job))


@router.post("/renders/{render_id}/retry-failed", response_model=RenderJobRead)
def retry_failed_render(ctx: CtxDep, render_id: Id) -> Response:
    """Run the failed chunks again, their attempts reset; a failed job is queued again."""
    job = service.retry_failed(ctx.session, actor=ctx.actor, job_id=render_id)
    return ctx.done(RenderJobRead.model_validate(job))
