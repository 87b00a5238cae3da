from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bifrost_core.schemas import InputSchema, ReadSchema

Visibility = Literal["internal", "client"]


class NoteCreate(InputSchema):
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
    created_at: datetime
