"""The response models the client returns, defined here rather than imported from the
server: the server's schemas live beside SQLAlchemy and Prefect, which a DCC's Python
must not need. Fields the API adds later are kept (extra="allow"), so a newer server
never breaks an older client."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Version(BaseModel):
    """A published version, as the API answers it."""

    model_config = ConfigDict(extra="allow")

    id: int
    project_id: int
    task_id: int
    variant: str
    number: int
    status: str
    comment: str
