"""Render jobs written straight into the records, for the lifecycle tests and the farm tests
that run before (or beside) the render API: a job and its chunks as submit plans them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bifrost_core.render.frames import cut_chunks, parse_frames
from bifrost_core.render.models import RenderChunk, RenderJob


def add_job(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    shot_id: int | None = None,
    command: list[str] | None = None,
    frames: str = "1-4",
    chunk_size: int = 1,
    priority: int = 50,
    gpus: int = 1,
    retries: int = 0,
    timeout: int = 60,
    output_dir: str = "/tmp/none",
    created_by: int | None = None,
    environment: dict[str, str] | None = None,
    scene: str | None = None,
    name: str = "job",
) -> RenderJob:
    frame_set = parse_frames(frames)
    job = RenderJob(
        project_id=project_id,
        shot_id=shot_id,
        task_id=task_id,
        name=name,
        command=command or ["true"],
        scene=scene,
        frames=frame_set.spec,
        frame_count=len(frame_set.frames),
        chunk_size=chunk_size,
        priority=priority,
        gpus_per_chunk=gpus,
        timeout_seconds=timeout,
        retries=retries,
        environment=environment or {},
        state="queued",
        output_dir=output_dir,
        created_by=created_by,
    )
    session.add(job)
    session.flush()
    for chunk in cut_chunks(frame_set.frames, chunk_size):
        session.add(
            RenderChunk(
                job_id=job.id,
                index=chunk.index,
                frames=chunk.frames,
                first=chunk.first,
                last=chunk.last,
                step=chunk.step,
                frame_count=chunk.frame_count,
                state="pending",
            )
        )
    session.flush()
    return job
