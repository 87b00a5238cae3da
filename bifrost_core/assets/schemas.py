from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from bifrost_core.jsonbounds import JsonObject
from bifrost_core.schemas import Code, InputSchema, ReadSchema

AssetStatus = Literal["active", "on_hold", "omitted"]


class AssetTypeCreate(InputSchema):
    code: Code
    name: str = Field(default="", max_length=200)


class AssetTypeRead(ReadSchema):
    id: int
    project_id: int
    code: str
    name: str


class AssetCreate(InputSchema):
    code: Code
    asset_type: Code = Field(description="Code of the asset type; created when new")
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)
    status: AssetStatus = "active"
    meta: JsonObject = Field(default_factory=dict)


class AssetUpdate(InputSchema):
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    status: AssetStatus | None = None
    meta: JsonObject | None = None


class AssetRead(ReadSchema):
    id: int
    project_id: int
    asset_type_id: int
    code: str
    name: str
    description: str
    status: str
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class CastingCreate(InputSchema):
    shot_id: int
    asset_id: int
    count: int = Field(default=1, ge=1, le=100_000)


class CastingRead(ReadSchema):
    id: int
    project_id: int
    shot_id: int
    asset_id: int
    count: int
