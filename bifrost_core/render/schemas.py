"""Render job inputs and answers. What needs the database, the disk or the farm (frame set,
pool, scene file, GPU hosts) is checked by the service; these check shapes and bounds."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import Field, StringConstraints, field_validator, model_validator

from bifrost_core.db.repository import MAX_ID
from bifrost_core.render.planning import check_command
from bifrost_core.schemas import Code, InputSchema, ReadSchema, refuse_control_characters

RENDER_POOL = "bifrost-gpu"
MAX_TIMEOUT = 7 * 24 * 3600
MAX_ARGUMENTS = 256
MAX_ENVIRONMENT = 100
MAX_ENVIRONMENT_BYTES = 32 * 1024
# Bounded as it is parsed, before the checks below read it: names and values have a length,
# the mapping a size (tests/core/test_json_bounds.py holds every input to this).
EnvironmentName = Annotated[str, StringConstraints(max_length=256)]
EnvironmentValue = Annotated[str, StringConstraints(max_length=MAX_ENVIRONMENT_BYTES)]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# Set for each chunk by the farm (the GPUs it holds): a job's own value would be overwritten.
RESERVED_ENVIRONMENT = frozenset({"CUDA_VISIBLE_DEVICES", "BIFROST_WORKER_HOST", "BIFROST_WORKER_GPUS"})

Argument = Annotated[str, StringConstraints(max_length=4096)]


class RenderJobCreate(InputSchema):
    """A render job: `command` is rendered over `frames`, cut into chunks of `chunk_size`."""

    task_id: int = Field(ge=1, le=MAX_ID, description="The task the frames are a version of")
    name: Code | None = Field(
        default=None, description="Also the frame files' name; defaults to ENTITY_task (e.g. SH010_lighting)"
    )
    command: list[Argument] = Field(
        max_length=MAX_ARGUMENTS,
        description="The program and its arguments, a list (no shell); placeholders {scene}, {output}, "
        "{output_dir}, {first}, {last}, {step}, {frames}, {chunk}, {job}",
        examples=[["blender", "-b", "{scene}", "-o", "{output}", "-s", "{first}", "-e", "{last}", "-a"]],
    )
    frames: str = Field(max_length=10_000, description="fileseq notation: 1001-1100, 1-100x2, 1,5,10-20")
    chunk_size: int = Field(default=10, ge=1, le=10_000, description="Frames per chunk at most")
    priority: int = Field(default=50, ge=0, le=100, description="Higher runs first")
    gpus_per_chunk: int = Field(default=1, ge=1, le=64)
    timeout_seconds: int = Field(default=3600, ge=1, le=MAX_TIMEOUT, description="Per chunk attempt")
    retries: int = Field(default=2, ge=0, le=10, description="Extra attempts of a failed chunk")
    environment: dict[EnvironmentName, EnvironmentValue] = Field(
        default_factory=dict,
        max_length=MAX_ENVIRONMENT,
        description=f"Variables for the command: at most {MAX_ENVIRONMENT}, "
        f"{MAX_ENVIRONMENT_BYTES // 1024} KiB in all",
    )
    scene: str | None = Field(
        default=None, min_length=1, max_length=4096, description="Absolute path of the scene file"
    )
    pool: str = Field(default=RENDER_POOL, min_length=1, max_length=64)

    @field_validator("command", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError('must be a list of arguments, e.g. ["blender", "-b", "{scene}"], not a string')
        return value

    @field_validator("environment", mode="after")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        size = 0
        for name, text in value.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(
                    f"{name[:40]!r} is not a variable name (letters, digits and _, not a digit first)"
                )
            if name in RESERVED_ENVIRONMENT:
                raise ValueError(f"{name} is set by the farm for each chunk")
            refuse_control_characters(text, name)
            size += len(name) + len(text.encode())
        if size > MAX_ENVIRONMENT_BYTES:
            raise ValueError(f"{size} bytes in all; the limit is {MAX_ENVIRONMENT_BYTES // 1024} KiB")
        return value

    @model_validator(mode="after")
    def _command(self) -> Self:
        used = check_command(self.command)
        if "scene" in used and self.scene is None:
            raise ValueError("the command uses {scene} but no scene is given")
        return self


class RenderChunkRead(ReadSchema):
    id: int
    job_id: int
    index: int
    frames: str
    first: int
    last: int
    step: int
    frame_count: int
    state: str
    attempts: int
    host: str | None
    gpu_ids: str | None
    prefect_run_id: str | None
    dispatched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    exit_code: int | None
    log_path: str | None
    error: str | None


class RenderJobRead(ReadSchema):
    id: int
    project_id: int
    shot_id: int | None
    asset_id: int | None
    task_id: int
    name: str
    command: list[str]
    scene: str | None
    frames: str
    frame_count: int
    chunk_size: int
    priority: int
    gpus_per_chunk: int
    timeout_seconds: int
    retries: int
    environment: dict[str, str]
    pool: str
    state: str
    output_dir: str
    version_id: int | None
    report: str | None
    prefect_run_id: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RenderProgress(ReadSchema):
    frames_total: int
    frames_done: int = Field(description="Frames of completed chunks")
    chunks_total: int
    chunks: dict[str, int] = Field(description="Chunks by state (every state, zeros included)")


class RenderJobDetail(RenderJobRead):
    progress: RenderProgress
    chunks: list[RenderChunkRead]
