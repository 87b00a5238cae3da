from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bifrost_core.schemas import Code, InputSchema, ReadSchema

Kind = Literal["task", "version"]
# Status codes are stored in 32-character columns (statuses, transitions, tasks, versions).
StatusCode = Annotated[Code, Field(max_length=32)]


class StatusIn(InputSchema):
    code: StatusCode
    name: str = Field(min_length=1, max_length=100)
    is_initial: bool = False
    is_final: bool = False
    # Task workflows only: the status a task moves to when a new version of it is published.
    on_new_version: bool = False


class TransitionIn(InputSchema):
    from_code: StatusCode
    to_code: StatusCode


class WorkflowUpdate(InputSchema):
    """Replaces the whole workflow of one kind; exactly one status is initial."""

    statuses: list[StatusIn] = Field(min_length=1)
    transitions: list[TransitionIn] = Field(default_factory=list)


class StatusRead(ReadSchema):
    code: str
    name: str
    is_initial: bool
    is_final: bool
    on_new_version: bool = False


class TransitionRead(ReadSchema):
    from_code: str
    to_code: str


class WorkflowRead(ReadSchema):
    kind: str
    statuses: list[StatusRead]
    transitions: list[TransitionRead]
