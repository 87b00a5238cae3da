from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.events.models import Event


class EventRepository(Repository[Event]):
    model = Event
    label = "event"
