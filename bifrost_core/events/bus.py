"""In-process subscribers to committed events (cache invalidation, search indexing, ...).

Handlers run after the transaction commits, never before; the events table stays the
durable log that out-of-process consumers read with an id cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bifrost_core.events.schemas import EventRead

log = logging.getLogger(__name__)
Handler = Callable[[EventRead], None]
_handlers: list[Handler] = []


def subscribe(handler: Handler) -> Handler:
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


def unsubscribe(handler: Handler) -> None:
    if handler in _handlers:
        _handlers.remove(handler)


def deliver(events: list[EventRead]) -> None:
    for handler in list(_handlers):
        for event in events:
            try:
                handler(event)
            except Exception:
                # One broken subscriber (say, search indexing) must not starve the others.
                log.exception("event handler %r failed on event %s", handler, event.id)
