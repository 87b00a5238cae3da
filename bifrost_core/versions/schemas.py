from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from bifrost_core.jsonbounds import JsonObject
from bifrost_core.schemas import Code, Frame, InputSchema, ReadSchema

RepresentationKind = Literal["frames", "movie", "proxy", "thumbnail", "file"]


class FileIn(InputSchema):
    name: str = Field(min_length=1, max_length=1024)
    blob_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    frame: Frame | None = None


class RepresentationIn(InputSchema):
    name: Code
    kind: RepresentationKind
    frame_in: Frame | None = None
    frame_out: Frame | None = None
    frame_padding: int | None = Field(default=None, ge=1, le=10)
    missing_frames: str = Field(default="", max_length=4096)
    meta: JsonObject = Field(default_factory=dict)
    files: list[FileIn] = Field(min_length=1)

    @model_validator(mode="after")
    def _frames(self) -> Self:
        if (self.frame_in is None) != (self.frame_out is None):
            raise ValueError("give both frame_in and frame_out, or neither")
        if self.frame_in is not None and self.frame_in > self.frame_out:  # type: ignore[operator]
            raise ValueError(f"frame in ({self.frame_in}) is after frame out ({self.frame_out})")
        names = [file.name for file in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"representation {self.name!r} lists a file name twice")
        return self


class VersionCreate(InputSchema):
    """A publish: its number is allocated by Bifrost, never given by the caller."""

    task_id: int
    variant: Code = "main"
    comment: str = Field(default="", max_length=10_000)
    source: str = Field(default="", max_length=1024)
    meta: JsonObject = Field(default_factory=dict)
    representations: list[RepresentationIn] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [representation.name for representation in self.representations]
        if len(set(names)) != len(names):
            raise ValueError("representation names must be unique within a version")
        return self


class VersionUpdate(InputSchema):
    """Only the review status and the comment change after a publish; the content never does."""

    status: Code | None = None
    comment: str | None = Field(default=None, max_length=10_000)


class FileRead(ReadSchema):
    name: str
    frame: int | None
    blob_id: int
    published_path: str | None = Field(
        default=None, description="Path under the publish root (set by ingest and publish)"
    )
    locations: dict[str, str] = Field(
        default_factory=dict,
        description="Tier -> where to read the file: its published link on a local tier, "
        "its blob's URL on an object store",
    )


class RepresentationRead(ReadSchema):
    id: int
    version_id: int
    name: str
    kind: str
    frame_in: int | None
    frame_out: int | None
    frame_padding: int | None
    missing_frames: str
    meta: dict[str, Any]


class VersionRead(ReadSchema):
    id: int
    project_id: int
    task_id: int
    shot_id: int | None
    asset_id: int | None
    variant: str
    number: int
    author_id: int | None
    comment: str
    source: str
    status: str
    meta: dict[str, Any]
    render_job_id: int | None = None  # the render job whose frames it is
    media_error: str | None = Field(
        default=None, description="Why no review media could be made from it (None: made, or not yet tried)"
    )
    created_at: datetime
    updated_at: datetime
    representations: list[RepresentationRead] = Field(default_factory=list)
