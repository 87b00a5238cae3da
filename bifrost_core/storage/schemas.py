from __future__ import annotations

from datetime import datetime

from pydantic import Field

from bifrost_core.schemas import InputSchema, ReadSchema


class BlobIn(InputSchema):
    """A blob already stored (and durable) in a tier, to be recorded."""

    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    tier: str = Field(min_length=1, max_length=32)
    url: str = Field(min_length=1, max_length=2048)


class BlobLocationRead(ReadSchema):
    tier: str
    url: str
    created_at: datetime
    verified_at: datetime | None


class BlobRead(ReadSchema):
    id: int
    hash: str
    size: int
    created_at: datetime
