"""Base pydantic schemas shared by every domain: strict inputs, ORM-friendly outputs."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
]
# Frames live in INTEGER columns: a larger number would be a 500 from PostgreSQL, not a 422.
Frame = Annotated[int, Field(ge=-(2**31) + 1, le=2**31 - 1)]

# Fields people write prose in: tab, newline and carriage return are allowed there. Every other
# string field (codes, names, paths, addresses) refuses all C0 control characters.
FREE_TEXT_FIELDS = frozenset({"description", "comment", "body"})
_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def refuse_control_characters(value: Any, field: str | None) -> Any:
    """`value` unchanged, unless a string in it (or in a list of strings) holds a control
    character: PostgreSQL refuses NUL in text where SQLite stores it, and none of them prints.
    Dicts are left to their own type; nested models check themselves."""
    strings = value if isinstance(value, list | tuple | set | frozenset) else (value,)
    pattern = _CONTROL_IN_TEXT if field in FREE_TEXT_FIELDS else _CONTROL
    for text in strings:
        if isinstance(text, str) and (found := pattern.search(text)):
            allowed = " (only tab, newline and carriage return are)" if field in FREE_TEXT_FIELDS else ""
            raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed{allowed}")
    return value


class InputSchema(BaseModel):
    """Create/Update inputs refuse unknown fields, so an `id` or `project_id` can't sneak in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_control_characters(value, info.field_name)


class ReadSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def changes(update: BaseModel) -> dict[str, object]:
    """The fields a partial update actually set."""
    return update.model_dump(exclude_unset=True)
