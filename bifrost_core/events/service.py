"""Recording events: one row per change, delivered to subscribers after commit."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from bifrost_core.db.uow import after_commit
from bifrost_core.events import bus
from bifrost_core.events.models import Event
from bifrost_core.events.schemas import EventRead
from bifrost_core.scope import Actor

_QUEUED = "bifrost_events"


def record(
    session: Session,
    *,
    actor: Actor,
    kind: str,
    entity_type: str,
    entity_id: int | None,
    project_id: int | None,
    payload: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        kind=kind,
        entity_type=entity_type,
        entity_id=entity_id,
        project_id=project_id,
        actor_id=actor.user_id,
        payload=payload or {},
    )
    session.add(event)
    queued = session.info.get(_QUEUED)
    if queued is None:
        # One delivery per transaction, whatever the number of events. It belongs to the whole
        # transaction: events of a rolled-back savepoint are filtered out when it runs.
        queued = session.info[_QUEUED] = []
        after_commit(session, lambda: bus.deliver(_snapshot(session.info.pop(_QUEUED, []))), outermost=True)
    queued.append(event)
    return event


def record_change(
    session: Session,
    verb: str,
    *,
    actor: Actor,
    entity_type: str,
    entity: Any,
    project_id: int | None,
    payload: dict[str, Any],
) -> Event:
    """The `<entity_type>.<verb>` event of a flushed entity (it has its id): created, updated
    (the payload says what changed), set, removed."""
    return record(
        session,
        actor=actor,
        kind=f"{entity_type}.{verb}",
        entity_type=entity_type,
        entity_id=entity.id,
        project_id=project_id,
        payload=payload,
    )


record_created = partial(record_change, verb="created")
record_updated = partial(record_change, verb="updated")


def _snapshot(events: list[Event]) -> list[EventRead]:
    # A rolled-back savepoint leaves its inserted events transient: they never happened.
    return [EventRead.model_validate(event) for event in events if inspect(event).persistent]
