"""A project's archive policy as set (checked) and as read."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from bifrost_core.schemas import InputSchema, ReadSchema


class PolicyRules(InputSchema):
    """Which versions of a project go to its archive tier: any that one rule selects.

    A policy with no rule archives nothing. A rule that would leave the project with no
    hot version at all (every version of a closed project does) only runs with `force`.
    """

    unapproved_older_than_days: int | None = Field(
        default=None, ge=1, le=36500, description="Versions not approved and older than this many days"
    )
    keep_latest: int | None = Field(
        default=None, ge=1, le=10000, description="All but the latest K versions of each task and variant"
    )
    closed_project: bool = Field(default=False, description="Every version once the project is closed")
    final_shot_after_days: int | None = Field(
        default=None,
        ge=0,
        le=36500,
        description="Every version of a shot this many days after it was marked final",
    )
    tier: str = Field(default="archive", pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Where they go")
    restored_hold_days: int = Field(
        default=14, ge=0, le=36500, description="A restored version stays hot at least this many days"
    )

    @model_validator(mode="after")
    def _not_hot(self) -> PolicyRules:
        if self.tier == "hot":
            raise ValueError("the archive tier cannot be the hot tier")
        return self

    @property
    def selects_anything(self) -> bool:
        return (
            self.unapproved_older_than_days is not None
            or self.keep_latest is not None
            or self.closed_project
            or self.final_shot_after_days is not None
        )


class PolicyRead(ReadSchema):
    project: str
    rules: PolicyRules
    updated_at: datetime | None = None
