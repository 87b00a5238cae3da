"""The two writes every domain makes alike: add a new entity, refusing a duplicate with a
sentence, and apply a partial update; each records its event. The entity's kind in the
event and the error is the repository's label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from bifrost_core.db.guards import apply_changes, ensure_absent
from bifrost_core.db.repository import Repository
from bifrost_core.events.service import record_created, record_updated

M = TypeVar("M")


def add_new(
    repository: Repository[M],
    row: M,
    *,
    unique: Sequence[str] = ("project_id", "code"),
    message: str | None = None,
    payload: dict[str, Any] | None = None,
) -> M:
    """Insert `row` unless one with the same `unique` fields exists (Conflict). The last
    unique field names the entity in the message and, unless `payload` is given, the event."""
    values = {name: getattr(row, name) for name in unique}
    refuse_duplicate(repository, values, message)
    key = unique[-1]
    return add_recorded(repository, row, {key: values[key]} if payload is None else payload)


def refuse_duplicate(repository: Repository[Any], values: dict[str, Any], message: str | None = None) -> None:
    """Conflict if a row has these `values` (the last one names it in the message); for a
    create that must make other rows first, which a duplicate should not leave behind."""
    model, key = repository.model, list(values)[-1]
    ensure_absent(
        repository.session,
        *(getattr(model, name) == value for name, value in values.items()),
        message=message or f"{repository.label} {values[key]!r} already exists",
    )


def add_recorded(repository: Repository[M], row: M, payload: dict[str, Any]) -> M:
    """Insert `row` and record its `.created` event."""
    repository.add(row)
    record_created(
        repository.session,
        actor=repository.actor,
        entity_type=_entity_type(repository),
        entity=row,
        project_id=_project_id(repository, row),
        payload=payload,
    )
    return row


def apply_update(repository: Repository[M], row: M, update: dict[str, object]) -> M:
    """Set the fields of a partial update on `row` and record what changed."""
    changed = apply_changes(row, update)
    repository.session.flush()
    record_updated(
        repository.session,
        actor=repository.actor,
        entity_type=_entity_type(repository),
        entity=row,
        project_id=_project_id(repository, row),
        payload=changed,
    )
    return row


def _entity_type(repository: Repository[Any]) -> str:
    return repository.label.replace(" ", "_")


def _project_id(repository: Repository[Any], row: Any) -> int | None:
    # A project is its own scope; users and tokens are studio-wide (no project).
    return getattr(row, repository.scope_column, None)
