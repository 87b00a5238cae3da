"""Render jobs: submit (checked in full, then recorded with all its chunks), list, show with
progress, cancel and retry-failed. Running them is the farm's (flows/render.py).

The GPU hosts a submit is checked against are handed in (`gpu_hosts`, host -> GPUs: the
Prefect global concurrency limits `gpu:<host>`, read by deployments/render.py), so this
module stays free of Prefect; as a function, it is asked last, once everything else passed
(a bad frame set is a 422 even while Prefect is down).

Cancel: the job becomes cancelled at once and so do its pending and dispatched chunks (a
dispatched chunk's run finds its chunk cancelled when it tries to claim it, and does nothing).
A running chunk stays running until its chunk flow, which checks its job while the command
runs, sees the job cancelled, stops the command and records the chunk cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset
from bifrost_core.db.base import utcnow
from bifrost_core.errors import InvalidInput, InvalidTransition, NotFound, PermissionDenied
from bifrost_core.events.service import record_created, record_updated
from bifrost_core.projects.models import Shot
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.projects.service import ensure_active
from bifrost_core.render import repository
from bifrost_core.render.frames import cut_chunks, parse_frames
from bifrost_core.render.models import JOB_STATES, RenderChunk, RenderJob
from bifrost_core.render.planning import job_output_dir
from bifrost_core.render.repository import RenderJobRepository
from bifrost_core.render.schemas import (
    RENDER_POOL,
    RenderChunkRead,
    RenderJobCreate,
    RenderJobDetail,
    RenderJobRead,
    RenderProgress,
)
from bifrost_core.scope import Actor
from bifrost_core.tasks.models import Task
from bifrost_core.tasks.repository import TaskRepository
from bifrost_core.users import permissions

# The work pools render chunks run on (the farm's GPU pool).
RENDER_POOLS = (RENDER_POOL,)
NO_GPU_HOST = "no GPU host is registered (start `bifrost worker --pool bifrost-gpu --gpus N`)"


def submit(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    data: RenderJobCreate,
    gpu_hosts: Mapping[str, int] | Callable[[], Mapping[str, int]],
    render_root: Path,
) -> RenderJob:
    """Check everything, then record the job (queued) and all its chunks (pending) in the
    session's transaction: a refused job leaves nothing behind."""
    project = ProjectRepository(session, actor).get(project_id)
    task = TaskRepository(session, actor).get(data.task_id)
    if task.project_id != project_id:
        raise NotFound(f"task {data.task_id} not found in project {project.code}")
    permissions.require(actor, "render.submit", project_id)
    ensure_active(project, doing="submit renders")
    if data.pool not in RENDER_POOLS:
        raise InvalidInput(f"unknown pool {data.pool!r} (render pools: {', '.join(RENDER_POOLS)})")
    frame_set = parse_frames(data.frames)
    chunks = cut_chunks(frame_set.frames, data.chunk_size)
    _check_scene(data.scene)
    _check_gpus(data.gpus_per_chunk, gpu_hosts() if callable(gpu_hosts) else gpu_hosts)

    job = RenderJob(
        project_id=project_id,
        shot_id=task.shot_id,
        asset_id=task.asset_id,
        task_id=task.id,
        name=data.name or _default_name(session, task),
        command=list(data.command),
        scene=data.scene,
        frames=frame_set.spec,
        frame_count=len(frame_set.frames),
        chunk_size=data.chunk_size,
        priority=data.priority,
        gpus_per_chunk=data.gpus_per_chunk,
        timeout_seconds=data.timeout_seconds,
        retries=data.retries,
        environment=dict(data.environment),
        pool=data.pool,
        state="queued",
        output_dir="",  # named after the id, known once inserted
        created_by=actor.user_id,
    )
    session.add(job)
    session.flush()
    job.output_dir = str(job_output_dir(render_root, project.code, job.id))
    repository.add_chunks(session, job.id, chunks)
    session.flush()
    record_created(
        session,
        actor=actor,
        entity_type="render_job",
        entity=job,
        project_id=project_id,
        payload={"task_id": task.id, "frames": job.frames, "chunks": len(chunks), "priority": job.priority},
    )
    return job


def _check_scene(scene: str | None) -> None:
    if scene is None:
        return
    path = Path(scene)
    if not path.is_absolute():
        raise InvalidInput(f"the scene {scene!r} must be an absolute path")
    try:
        found = path.is_file()
    except OSError as error:  # a name too long for the file system, ...
        raise InvalidInput(f"the scene {scene!r} cannot be read: {error.strerror}") from None
    if not found:
        raise InvalidInput(f"the scene file {scene!r} does not exist (as this host sees it)")


def _check_gpus(gpus_per_chunk: int, gpu_hosts: Mapping[str, int]) -> None:
    if not gpu_hosts:
        raise InvalidInput(NO_GPU_HOST)
    host, most = max(gpu_hosts.items(), key=lambda item: (item[1], item[0]))
    if gpus_per_chunk > most:
        raise InvalidInput(
            f"{gpus_per_chunk} GPUs per chunk: no registered GPU host has that many "
            f"(the most is {most}, on {host})"
        )


def _default_name(session: Session, task: Task) -> str:
    """ENTITY_task (e.g. SH010_lighting), cut to a code's 64 characters."""
    entity = session.get(Shot, task.shot_id) if task.shot_id else session.get(Asset, task.asset_id)
    return f"{entity.code}_{task.name}"[:64]  # type: ignore[union-attr]


def list_jobs(
    session: Session,
    *,
    actor: Actor,
    project_id: int,
    state: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> list[RenderJob]:
    """The project's jobs in id order (oldest first), a page at a time (`after`: the last id)."""
    ProjectRepository(session, actor).get(project_id)
    permissions.require(actor, "render.read", project_id)
    if state is not None and state not in JOB_STATES:
        raise InvalidInput(f"unknown state {state!r} (states: {', '.join(JOB_STATES)})")
    return RenderJobRepository(session, actor).list(
        RenderJob.project_id == project_id, filters={"state": state}, after=after, limit=limit
    )


def get_job(session: Session, *, actor: Actor, job_id: int) -> RenderJob:
    job = RenderJobRepository(session, actor).get(job_id)
    permissions.require(actor, "render.read", job.project_id)
    return job


def progress_of(session: Session, jobs: list[RenderJob]) -> dict[int, RenderProgress]:
    """Each job's progress, in one query for all of them."""
    counts = repository.chunk_counts(session, (job.id for job in jobs))
    return {
        job.id: RenderProgress(
            frames_total=job.frame_count,
            frames_done=counts[job.id]["completed"][1],
            chunks_total=sum(chunks for chunks, _ in counts[job.id].values()),
            chunks={state: chunks for state, (chunks, _) in counts[job.id].items()},
        )
        for job in jobs
    }


def job_detail(session: Session, *, actor: Actor, job_id: int) -> RenderJobDetail:
    """The job, its progress and every chunk (state, attempts, host, GPUs, times, exit code, log)."""
    job = get_job(session, actor=actor, job_id=job_id)
    return RenderJobDetail(
        **RenderJobRead.model_validate(job).model_dump(),
        progress=progress_of(session, [job])[job.id],
        chunks=[RenderChunkRead.model_validate(chunk) for chunk in repository.chunks_of(session, job.id)],
    )


def _require_control(actor: Actor, job: RenderJob) -> None:
    """Cancel and retry: `render.manage` on any job, `render.submit` on one's own."""
    if permissions.allowed(actor, "render.manage", job.project_id):
        return
    permissions.require(actor, "render.submit", job.project_id)
    if job.created_by != actor.user_id:
        role = actor.role_in(job.project_id)
        raise PermissionDenied(
            f"{role} may cancel and retry only their own render jobs", action="render.manage"
        )


def cancel(session: Session, *, actor: Actor, job_id: int) -> RenderJob:
    """Cancel the job: pending and dispatched chunks never start; running ones are stopped by
    their chunk flow (see the module's docstring). Cancelling a cancelled job changes nothing."""
    job = RenderJobRepository(session, actor).get(job_id)
    _require_control(actor, job)
    if job.state == "cancelled":
        return job
    if job.state in ("completed", "failed"):
        raise InvalidTransition(f"render job {job.id} has {job.state}: there is nothing to cancel")
    now = utcnow()
    cancelled = session.execute(
        update(RenderChunk)
        .where(RenderChunk.job_id == job.id, RenderChunk.state.in_(("pending", "dispatched")))
        .values(state="cancelled", finished_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    before = job.state
    job.state = "cancelled"
    job.finished_at = now
    session.flush()
    record_updated(
        session,
        actor=actor,
        entity_type="render_job",
        entity=job,
        project_id=job.project_id,
        payload={"state": [before, "cancelled"], "cancelled_chunks": cancelled},
    )
    return job


def retry_failed(session: Session, *, actor: Actor, job_id: int) -> RenderJob:
    """Put the job's failed chunks back to pending with their attempts reset. A failed job is
    queued again, its `render` run (which ended with the failure) forgotten so that the queue
    starts a new one; a job still running keeps running."""
    job = RenderJobRepository(session, actor).get(job_id)
    _require_control(actor, job)
    if job.state in ("completed", "cancelled"):
        raise InvalidTransition(f"render job {job.id} is {job.state}: there is nothing to retry")
    retried = session.execute(
        update(RenderChunk)
        .where(RenderChunk.job_id == job.id, RenderChunk.state == "failed")
        .values(
            state="pending",
            attempts=0,
            host=None,
            gpu_ids=None,
            prefect_run_id=None,
            dispatched_at=None,
            started_at=None,
            finished_at=None,
            heartbeat_at=None,
            exit_code=None,
            error=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not retried:
        raise InvalidTransition(f"render job {job.id} has no failed chunks to retry")
    before = job.state
    if job.state == "failed":
        job.state = "queued"
        job.report = None
        job.finished_at = None
        job.prefect_run_id = None
    session.flush()
    record_updated(
        session,
        actor=actor,
        entity_type="render_job",
        entity=job,
        project_id=job.project_id,
        payload={"state": [before, job.state], "retried_chunks": retried},
    )
    return job
