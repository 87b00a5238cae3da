"""The writes every domain makes alike, each recording its event: add a new entity (refusing
a duplicate with a sentence), apply a partial update, put a row by its key, remove a row.
The entity's kind in the event and the error is the repository's label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from bifrost_core.db.guards import apply_changes, ensure_absent
from bifrost_core.db.repository import Repository
from bifrost_core.events.service import record_change

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
    _record("created", repository, row, payload)
    return row


def apply_update(repository: Repository[M], row: M, update: dict[str, object]) -> M:
    """Set the fields of a partial update on `row` and record what changed."""
    changed = apply_changes(row, update)
    repository.session.flush()
    _record("updated", repository, row, changed)
    return row


def put(repository: Repository[M], key: dict[str, Any], values: dict[str, Any]) -> M:
    """The row of `key` with `values`: made, or changed when there is one (a membership's
    role, a casting's count). Records `.set` with the key (less the project) and values."""
    model = repository.model
    row = repository.first(*(getattr(model, name) == value for name, value in key.items()))
    if row is None:
        row = repository.add(model(**key, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
        repository.session.flush()
    _record("set", repository, row, {**{k: v for k, v in key.items() if k != "project_id"}, **values})
    return row


def remove(repository: Repository[Any], row: Any, payload: dict[str, Any]) -> None:
    """Delete `row` and record its `.removed` event."""
    repository.session.delete(row)
    repository.session.flush()
    _record("removed", repository, row, payload)


def _record(verb: str, repository: Repository[Any], row: Any, payload: dict[str, Any]) -> None:
    # The repository's label is the entity's kind; a project is its own scope, and users
    # and tokens are studio-wide (no project).
    record_change(
        repository.session,
        verb,
        actor=repository.actor,
        entity_type=repository.label.replace(" ", "_"),
        entity=row,
        project_id=getattr(row, repository.scope_column, None),
        payload=payload,
    )
