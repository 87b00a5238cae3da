from __future__ import annotations

from datetime import date, datetime
from typing import Self

from pydantic import Field, model_validator

from bifrost_core.schemas import Code, InputSchema, ReadSchema


class TaskTypeCreate(InputSchema):
    code: Code
    name: str = Field(default="", max_length=200)


class TaskTypeRead(ReadSchema):
    id: int
    project_id: int
    code: str
    name: str


class TaskCreate(InputSchema):
    task_type: Code = Field(description="Code of the task type; created when new")
    shot_id: int | None = None
    asset_id: int | None = None
    name: Code | None = Field(default=None, description="Defaults to the task type's code")
    due_date: date | None = None
    assignee_ids: list[int] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _one_entity(self) -> Self:
        if (self.shot_id is None) == (self.asset_id is None):
            raise ValueError("a task belongs to exactly one shot or one asset")
        return self


class TaskUpdate(InputSchema):
    status: Code | None = None
    due_date: date | None = None
    assignee_ids: list[int] | None = Field(default=None, max_length=100)


class TaskRead(ReadSchema):
    id: int
    project_id: int
    task_type_id: int
    shot_id: int | None
    asset_id: int | None
    name: str
    status: str
    due_date: date | None
    assignee_ids: list[int]
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _assignee_ids(cls, value: object) -> object:
        assignees = getattr(value, "assignees", None)
        if assignees is not None:
            return {
                **{name: getattr(value, name) for name in cls.model_fields if name != "assignee_ids"},
                "assignee_ids": sorted(user.id for user in assignees),
            }
        return value
