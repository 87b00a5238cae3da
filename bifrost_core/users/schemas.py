from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bifrost_core.schemas import Code, InputSchema, ReadSchema

Role = Literal["coordinator", "supervisor", "artist", "client", "service"]


class UserCreate(InputSchema):
    username: Code
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254)
    is_admin: bool = False


class UserUpdate(InputSchema):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    is_active: bool | None = None


class UserRead(ReadSchema):
    id: int
    username: str
    name: str
    email: str
    is_admin: bool
    is_active: bool
    created_at: datetime


class MembershipCreate(InputSchema):
    user_id: int
    role: Role


class MembershipRead(ReadSchema):
    id: int
    project_id: int
    user_id: int
    role: str


class TokenCreate(InputSchema):
    name: str = Field(default="", max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenRead(ReadSchema):
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    parent_id: int | None = Field(
        default=None, description="The token this one was made with; revoking it revokes this one"
    )


class TokenIssued(TokenRead):
    """Returned once, at creation: the only time the secret is visible."""

    token: str
