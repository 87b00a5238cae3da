from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bifrost_core.schemas import Frame, InputSchema, ReadSchema

Visibility = Literal["internal", "client"]
PlaylistKind = Literal["daily", "client", "other"]
DecisionKind = Literal["approve", "request_changes"]

# A drawing is a few strokes over a frame, not an image: these bounds keep one note under
# ~200 KB of JSON whatever a client sends.
MAX_STROKES = 100
MAX_POINTS = 2000
MAX_POINTS_PER_NOTE = 10_000
# Coordinates are relative to the frame (0..1 across and down), so a drawing fits any proxy size.
Coordinate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Colour = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$")]
# [x, y]: a list rather than a tuple, so that the OpenAPI schema is a plain array of arrays.
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=2)]


class Stroke(InputSchema):
    colour: Colour = "#ff3b30"
    width: float = Field(default=0.004, gt=0, le=0.1, allow_inf_nan=False)
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)


class Drawing(InputSchema):
    strokes: list[Stroke] = Field(min_length=1, max_length=MAX_STROKES)

    @model_validator(mode="after")
    def _bounded(self) -> Drawing:
        points = sum(len(stroke.points) for stroke in self.strokes)
        if points > MAX_POINTS_PER_NOTE:
            raise ValueError(f"a drawing holds at most {MAX_POINTS_PER_NOTE} points in all, not {points}")
        return self


class NoteCreate(InputSchema):
    body: str = Field(min_length=1, max_length=20_000)
    visibility: Visibility = "internal"
    # Version notes only: one frame (frame_out omitted) or a range, inside the version's frames.
    frame_in: Frame | None = None
    frame_out: Frame | None = None
    drawing: Drawing | None = None

    @model_validator(mode="after")
    def _frames(self) -> NoteCreate:
        if self.frame_out is not None and self.frame_in is None:
            raise ValueError("frame_out needs frame_in")
        if self.frame_in is not None and self.frame_out is not None and self.frame_out < self.frame_in:
            raise ValueError("frame_out must not be before frame_in")
        if self.drawing is not None and self.frame_in is None:
            raise ValueError("a drawing is made on a frame: give frame_in")
        return self


class ReplyCreate(InputSchema):
    body: str = Field(min_length=1, max_length=20_000)
    visibility: Visibility = "internal"


class NoteRead(ReadSchema):
    id: int
    project_id: int
    version_id: int | None
    shot_id: int | None
    asset_id: int | None
    author_id: int | None
    body: str
    visibility: str
    parent_id: int | None = None
    frame_in: int | None = None
    frame_out: int | None = None
    drawing: dict[str, Any] | None = None
    created_at: datetime


class PlaylistCreate(InputSchema):
    name: str = Field(min_length=1, max_length=200)
    kind: PlaylistKind = "daily"
    shared_with_clients: bool = False
    version_ids: list[int] = Field(default_factory=list, max_length=1000)


class PlaylistUpdate(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: PlaylistKind | None = None
    shared_with_clients: bool | None = None


class PlaylistAdd(InputSchema):
    version_ids: list[int] = Field(min_length=1, max_length=1000)
    # Where the versions go (0 is first); at the end when omitted.
    position: int | None = Field(default=None, ge=0, le=100_000)


class PlaylistRead(ReadSchema):
    id: int
    project_id: int
    name: str
    kind: str
    shared_with_clients: bool
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class PlaylistDetail(PlaylistRead):
    version_ids: list[int]


class DecisionCreate(InputSchema):
    comment: str = Field(default="", max_length=20_000)
    # The playlist the decision was taken in, if any (a daily, a client review).
    playlist_id: int | None = None


class DecisionRead(ReadSchema):
    id: int
    project_id: int
    version_id: int
    playlist_id: int | None
    author_id: int | None
    decision: str
    comment: str
    version_status: str
    task_status: str
    created_at: datetime
