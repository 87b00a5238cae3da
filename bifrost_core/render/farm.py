"""What the farm's flows read from the render records: plain data, no session leaves here.

`chunk_work` is what a chunk run needs to run its command; `job_view` what the dispatcher
and the job's `render` run need (codes to publish under, the submitter to act as).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bifrost_core.assets.models import Asset
from bifrost_core.errors import NotFound
from bifrost_core.projects.models import Project, Sequence, Shot
from bifrost_core.render.models import RenderChunk, RenderJob
from bifrost_core.render.planning import command_for
from bifrost_core.tasks.models import Task
from bifrost_core.users.models import User
from bifrost_core.versions.models import Version


@dataclass(frozen=True)
class ChunkWork:
    job_id: int
    index: int
    argv: list[str]  # the command, its placeholders filled in for this chunk
    output_dir: str
    gpus: int
    timeout_seconds: float
    environment: dict[str, str]


@dataclass(frozen=True)
class JobView:
    id: int
    name: str
    project: str
    sequence: str | None
    shot: str | None
    asset: str | None
    task: str
    submitter: str
    output_dir: str
    frame_count: int
    render_run_id: str | None


@dataclass(frozen=True)
class FailedChunk:
    index: int
    frames: str
    attempts: int
    host: str | None
    exit_code: int | None
    error: str | None
    log_path: str | None


def chunk_work(session: Session, chunk_id: int) -> ChunkWork:
    chunk = session.get(RenderChunk, chunk_id)
    if chunk is None:
        raise NotFound(f"no render chunk {chunk_id}")
    job = session.get(RenderJob, chunk.job_id)
    return ChunkWork(
        job_id=job.id,
        index=chunk.index,
        argv=command_for(job, chunk),
        output_dir=job.output_dir,
        gpus=job.gpus_per_chunk,
        timeout_seconds=float(job.timeout_seconds),
        environment=dict(job.environment or {}),
    )


def job_view(session: Session, job_id: int) -> JobView:
    job = session.get(RenderJob, job_id)
    if job is None:
        raise NotFound(f"no render job {job_id}")
    sequence = shot = asset = None
    if job.shot_id is not None:
        found = session.get(Shot, job.shot_id)
        shot = found.code
        sequence = session.get(Sequence, found.sequence_id).code
    else:
        asset = session.get(Asset, job.asset_id).code
    return JobView(
        id=job.id,
        name=job.name,
        project=session.get(Project, job.project_id).code,
        sequence=sequence,
        shot=shot,
        asset=asset,
        task=session.get(Task, job.task_id).name,
        submitter=submitter(session, job),
        output_dir=job.output_dir,
        frame_count=job.frame_count,
        render_run_id=job.prefect_run_id,
    )


def submitter(session: Session, job: RenderJob) -> str:
    """The username the job's runs act as: who submitted it."""
    created_by = job.created_by
    if isinstance(created_by, str):
        return created_by
    return session.scalar(select(User.username).where(User.id == created_by))


def failed_chunks(session: Session, job_id: int) -> list[FailedChunk]:
    return [
        FailedChunk(c.index, c.frames, c.attempts, c.host, c.exit_code, c.error, c.log_path)
        for c in session.scalars(
            select(RenderChunk)
            .where(RenderChunk.job_id == job_id, RenderChunk.state == "failed")
            .order_by(RenderChunk.index)
        )
    ]


def record_version(session: Session, job_id: int, version_id: int) -> None:
    """The version made of the job's frames knows its job."""
    session.execute(
        update(Version)
        .where(Version.id == version_id)
        .values(render_job_id=job_id)
        .execution_options(synchronize_session=False)
    )
