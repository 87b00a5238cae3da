"""The response models the client returns, defined here rather than imported from the
server: the server's schemas live beside SQLAlchemy and Prefect, which a DCC's Python
must not need. Fields the API adds later are kept (extra="allow"), so a newer server
never breaks an older client."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Version(BaseModel):
    """A published version, as the API answers it."""

    model_config = ConfigDict(extra="allow")

    id: int
    project_id: int
    task_id: int
    variant: str
    number: int
    status: str
    comment: str


class RenderJob(BaseModel):
    """A render job, as the API answers it; `progress` and `chunks` when it was read by id
    (`progress` in lists too)."""

    model_config = ConfigDict(extra="allow")

    id: int
    project_id: int
    task_id: int
    name: str
    state: str
    frames: str
    frame_count: int
    chunk_size: int
    priority: int
    gpus_per_chunk: int
    output_dir: str
    version_id: int | None = None
    report: str | None = None
    progress: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] | None = None

    @property
    def frames_done(self) -> int | None:
        return None if self.progress is None else self.progress["frames_done"]
