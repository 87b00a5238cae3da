from __future__ import annotations

from datetime import datetime
from typing import Any

from bifrost_core.schemas import ReadSchema


class EventRead(ReadSchema):
    id: int
    project_id: int | None
    actor_id: int | None
    kind: str
    entity_type: str
    entity_id: int | None
    payload: dict[str, Any]
    created_at: datetime
