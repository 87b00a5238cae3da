"""Checks shared by every service: uniqueness with a readable message."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bifrost_core.errors import Conflict, InvalidInput

T = TypeVar("T")


def get_or_create(session: Session, find: Callable[[], T | None], create: Callable[[], T]) -> T:
    """Find a row or create it; another transaction creating it at the same time is no error.

    The insert runs in a savepoint. On PostgreSQL a racing insert waits for the other
    transaction and, once that commits, fails on the unique key: then its row is found.
    """
    found = find()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            return create()
    except (IntegrityError, Conflict):
        found = find()
        if found is None:
            raise
        return found


def ensure_absent(session: Session, *conditions: ColumnElement[bool], message: str) -> None:
    """Refuse a duplicate before the insert, so the caller gets a sentence, not an IntegrityError."""
    if session.scalar(select(exists().where(*conditions))):
        raise Conflict(message)


def apply_changes(entity: object, update: dict[str, object]) -> dict[str, object]:
    """Set the fields of a partial update; a null for a required column is refused."""
    columns = entity.__table__.columns  # type: ignore[attr-defined]
    for name, value in update.items():
        if value is None and not columns[name].nullable:
            raise InvalidInput(f"{name} cannot be null")
    for name, value in update.items():
        setattr(entity, name, value)
    return {
        # JSON values stay JSON in the event payload; only Decimal, date and the like become text.
        name: value if isinstance(value, int | float | str | bool | dict | list | None) else str(value)
        for name, value in update.items()
    }
