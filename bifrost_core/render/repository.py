"""Queries of render jobs and their chunks. Chunks are reached through their job, whose
repository is scoped to the caller's projects."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bifrost_core.db.bulk import insert_rows
from bifrost_core.db.repository import Repository
from bifrost_core.render.frames import Chunk
from bifrost_core.render.models import CHUNK_STATES, JOB_STATES, RenderChunk, RenderJob

_CHUNK_COLUMNS = ("job_id", "index", "frames", "first", "last", "step", "frame_count", "state", "attempts")


class RenderJobRepository(Repository[RenderJob]):
    model = RenderJob
    label = "render job"


def add_chunks(session: Session, job_id: int, chunks: Iterable[Chunk]) -> None:
    """Record a new job's chunks, pending, in one bulk statement (10,000 chunks in milliseconds)."""
    insert_rows(
        session,
        RenderChunk.__table__,  # type: ignore[arg-type]
        _CHUNK_COLUMNS,
        ((job_id, c.index, c.frames, c.first, c.last, c.step, c.frame_count, "pending", 0) for c in chunks),
    )


def chunks_of(session: Session, job_id: int) -> list[RenderChunk]:
    return list(
        session.scalars(select(RenderChunk).where(RenderChunk.job_id == job_id).order_by(RenderChunk.index))
    )


def chunk_counts(session: Session, job_ids: Iterable[int]) -> dict[int, dict[str, tuple[int, int]]]:
    """Job id -> chunk state -> (chunks, frames), every state present (zeros included)."""
    ids = list(job_ids)
    found: dict[int, dict[str, tuple[int, int]]] = {
        job_id: dict.fromkeys(CHUNK_STATES, (0, 0)) for job_id in ids
    }
    if not ids:
        return found
    rows = session.execute(
        select(RenderChunk.job_id, RenderChunk.state, func.count(), func.sum(RenderChunk.frame_count))
        .where(RenderChunk.job_id.in_(ids))
        .group_by(RenderChunk.job_id, RenderChunk.state)
    )
    for job_id, state, chunks, frames in rows:
        found[job_id][state] = (chunks, int(frames or 0))
    return found


def farm_counts(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Studio-wide: jobs by state and chunks by state, every state present (the farm's queue)."""
    jobs = dict.fromkeys(JOB_STATES, 0)
    by_job_state = select(RenderJob.state, func.count()).group_by(RenderJob.state)
    jobs.update(session.execute(by_job_state).tuples().all())
    chunks = dict.fromkeys(CHUNK_STATES, 0)
    by_state = select(RenderChunk.state, func.count()).group_by(RenderChunk.state)
    chunks.update(session.execute(by_state).tuples().all())
    return jobs, chunks
