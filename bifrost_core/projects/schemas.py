from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from bifrost_core.jsonbounds import ConfigObject, JsonObject
from bifrost_core.schemas import Code, Frame, InputSchema, ReadSchema

ProjectStatus = Literal["active", "closed", "archived"]
ShotStatus = Literal["active", "on_hold", "omitted"]
Fps = Decimal


def _naming_rules(value: Any) -> None:
    # Imported here: the storage package pulls in fsspec and blake3, which list and show
    # commands never need.
    from bifrost_core.storage.naming import NamingRules

    NamingRules(value)


def _path_templates(value: Any) -> None:
    from bifrost_core.storage.paths import PublishTemplates

    if value is None:  # the defaults
        return
    if not isinstance(value, Mapping):
        raise ValueError('config.path_templates must be an object such as {"shot": "...", "asset": "..."}')
    PublishTemplates.from_config(value)


def _review(value: Any) -> None:
    from bifrost_core.errors import InvalidInput
    from bifrost_core.media.settings import review_settings

    try:
        review_settings({"review": value})
    except InvalidInput as exc:
        raise ValueError(f"config: {exc}") from None


# The keys of a project's config that Bifrost reads, each with its check. Every one holds
# user-written templates or patterns: tests/api/test_api_config_bounds.py has blow-up cases
# for each key listed here.
CONFIG_CHECKS: dict[str, Callable[[Any], None]] = {
    "naming_rules": _naming_rules,
    "path_templates": _path_templates,
    "review": _review,
}


def check_project_config(config: dict[str, Any]) -> dict[str, Any]:
    """Naming rules and path templates fail when they are set, not at the next ingest."""
    from bifrost_core.storage.errors import NamingRuleError, PathTemplateError

    try:
        for key, check in CONFIG_CHECKS.items():
            if key in config:
                check(config[key])
    except (NamingRuleError, PathTemplateError) as exc:
        raise ValueError(f"config: {exc}") from None
    return config


ProjectConfig = Annotated[ConfigObject, AfterValidator(check_project_config)]
# Tier name -> root (a folder or an fsspec URL); whether the root is allowed is the service's check.
StorageTiers = Annotated[
    dict[
        Annotated[Code, Field(max_length=32)],
        Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00]*$")],
    ],
    Field(max_length=16),
]


class ProjectCreate(InputSchema):
    code: Code = Field(max_length=32)
    name: str = Field(min_length=1, max_length=200)
    fps: Fps = Field(default=Decimal("24"), gt=0, le=1000)
    resolution_width: int = Field(default=1920, gt=0, le=65536)
    resolution_height: int = Field(default=1080, gt=0, le=65536)
    frame_padding: int = Field(default=4, ge=1, le=10)
    storage_tiers: StorageTiers = Field(default_factory=dict)
    config: ProjectConfig = Field(default_factory=dict)


class ProjectUpdate(InputSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    fps: Fps | None = Field(default=None, gt=0, le=1000)
    resolution_width: int | None = Field(default=None, gt=0, le=65536)
    resolution_height: int | None = Field(default=None, gt=0, le=65536)
    frame_padding: int | None = Field(default=None, ge=1, le=10)
    status: ProjectStatus | None = None
    storage_tiers: StorageTiers | None = None
    config: ProjectConfig | None = None


class ProjectRead(ReadSchema):
    id: int
    code: str
    name: str
    fps: Decimal
    resolution_width: int
    resolution_height: int
    frame_padding: int
    status: str
    storage_tiers: dict[str, Any]
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class EpisodeCreate(InputSchema):
    code: Code
    name: str = Field(default="", max_length=200)


class EpisodeUpdate(InputSchema):
    name: str | None = Field(default=None, max_length=200)


class EpisodeRead(ReadSchema):
    id: int
    project_id: int
    code: str
    name: str
    created_at: datetime
    updated_at: datetime


class SequenceCreate(InputSchema):
    code: Code
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=10_000)
    episode_id: int | None = None


class SequenceUpdate(InputSchema):
    name: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    episode_id: int | None = None


class SequenceRead(ReadSchema):
    id: int
    project_id: int
    episode_id: int | None
    code: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class _ShotFrames(InputSchema):
    frame_in: Frame | None = None
    frame_out: Frame | None = None
    handles_in: int | None = Field(default=None, ge=0, le=100_000)
    handles_out: int | None = Field(default=None, ge=0, le=100_000)
    cut_in: Frame | None = None
    cut_out: Frame | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.frame_in is not None and self.frame_out is not None and self.frame_in > self.frame_out:
            raise ValueError(f"frame in ({self.frame_in}) is after frame out ({self.frame_out})")
        if self.cut_in is not None and self.cut_out is not None and self.cut_in > self.cut_out:
            raise ValueError(f"cut in ({self.cut_in}) is after cut out ({self.cut_out})")
        return self


class ShotCreate(_ShotFrames):
    code: Code
    description: str = Field(default="", max_length=10_000)
    status: ShotStatus = "active"
    frame_in: Frame = 1001
    frame_out: Frame = 1100
    handles_in: int = Field(default=0, ge=0, le=100_000)
    handles_out: int = Field(default=0, ge=0, le=100_000)
    fps: Fps | None = Field(default=None, gt=0, le=1000)
    meta: JsonObject = Field(default_factory=dict)


class ShotUpdate(_ShotFrames):
    description: str | None = Field(default=None, max_length=10_000)
    status: ShotStatus | None = None
    fps: Fps | None = Field(default=None, gt=0, le=1000)
    meta: JsonObject | None = None


class ShotRead(ReadSchema):
    id: int
    project_id: int
    sequence_id: int
    code: str
    description: str
    status: str
    frame_in: int
    frame_out: int
    handles_in: int
    handles_out: int
    cut_in: int | None
    cut_out: int | None
    fps: Decimal | None
    meta: dict[str, Any]
    created_at: datetime
    updated_at: datetime
