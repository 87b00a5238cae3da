from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.events.models import Event


class EventRepository(Repository[Event]):
    model = Event
    label = "event"

    def since(self, cursor: int, *, project_id: int | None = None, limit: int = 100) -> list[Event]:
        filters = {"project_id": project_id}
        return self.list(filters=filters, after=cursor, limit=limit)
