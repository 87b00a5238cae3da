"""Base pydantic schemas shared by every domain: strict inputs, ORM-friendly outputs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
]
# Frames live in INTEGER columns: a larger number would be a 500 from PostgreSQL, not a 422.
Frame = Annotated[int, Field(ge=-(2**31) + 1, le=2**31 - 1)]


class InputSchema(BaseModel):
    """Create/Update inputs refuse unknown fields, so an `id` or `project_id` can't sneak in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def changes(update: BaseModel) -> dict[str, object]:
    """The fields a partial update actually set."""
    return update.model_dump(exclude_unset=True)
