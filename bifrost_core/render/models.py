"""RenderJob (a command rendered over a frame set for a task) and RenderChunk (a run of it on a
contiguous arithmetic progression of those frames, on one GPU host).

Job states: queued -> running -> completed | failed | cancelled.
Chunk states: pending -> dispatched -> running -> completed | failed | cancelled; a failed attempt
with attempts left goes back to pending.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bifrost_core.db.base import Base, BigId, IdMixin, JsonDict, utcnow

JOB_STATES = ("queued", "running", "completed", "failed", "cancelled")
CHUNK_STATES = ("pending", "dispatched", "running", "completed", "failed", "cancelled")
JOB_FINISHED = frozenset({"completed", "failed", "cancelled"})
CHUNK_FINISHED = frozenset({"completed", "failed", "cancelled"})


class RenderJob(IdMixin, Base):
    __tablename__ = "render_jobs"

    project_id: Mapped[int] = mapped_column(BigId, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    # Copied from the task, like a version's, so that a shot's renders need no join.
    shot_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("shots.id", ondelete="CASCADE"), index=True)
    asset_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("assets.id", ondelete="CASCADE"), index=True
    )
    task_id: Mapped[int] = mapped_column(BigId, ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    command: Mapped[list[str]] = mapped_column(JsonDict)  # JSON (JSONB): here a list of arguments
    scene: Mapped[str | None] = mapped_column(Text)
    frames: Mapped[str] = mapped_column(Text)
    frame_count: Mapped[int]
    chunk_size: Mapped[int]
    priority: Mapped[int] = mapped_column(default=50)
    gpus_per_chunk: Mapped[int] = mapped_column(default=1)
    timeout_seconds: Mapped[int]
    retries: Mapped[int] = mapped_column(default=0)
    environment: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    pool: Mapped[str] = mapped_column(String(64), default="bifrost-gpu")
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    output_dir: Mapped[str] = mapped_column(Text)
    version_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("versions.id", ondelete="SET NULL"))
    report: Mapped[str | None] = mapped_column(Text)
    prefect_run_id: Mapped[str | None] = mapped_column(String(36))
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RenderChunk(IdMixin, Base):
    __tablename__ = "render_chunks"
    __table_args__ = (
        UniqueConstraint("job_id", "index"),
        # The queue's question: which chunks are pending (or dispatched, or running), by job.
        Index("ix_render_chunks_state_job_id", "state", "job_id"),
    )

    job_id: Mapped[int] = mapped_column(BigId, ForeignKey("render_jobs.id", ondelete="CASCADE"))
    index: Mapped[int]
    frames: Mapped[str] = mapped_column(Text)
    first: Mapped[int]
    last: Mapped[int]
    step: Mapped[int]
    frame_count: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    host: Mapped[str | None] = mapped_column(String(255))
    gpu_ids: Mapped[str | None] = mapped_column(String(255))
    prefect_run_id: Mapped[str | None] = mapped_column(String(36))
    dispatched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    log_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
