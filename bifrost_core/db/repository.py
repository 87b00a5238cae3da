"""A generic repository: scoped lookups and keyset-paginated lists for one model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from bifrost_core.errors import NotFound
from bifrost_core.scope import SYSTEM, Actor

MAX_PAGE = 1000
# Ids are 64-bit integers: a bigger number names no row (and SQLite overflows binding it).
MAX_ID = 2**63 - 1


def valid_id(value: int) -> bool:
    return -MAX_ID <= value <= MAX_ID


M = TypeVar("M")


class Repository(Generic[M]):
    """Subclasses set `model` and `label`; `scope_column` names the column holding the project id."""

    model: type[M]
    label: str
    scope_column: str = "project_id"

    def __init__(self, session: Session, actor: Actor = SYSTEM) -> None:
        self.session = session
        self.actor = actor

    def _scoped(self, stmt: Select) -> Select:
        project_ids = self.actor.project_ids
        if project_ids is None:
            return stmt
        return stmt.where(getattr(self.model, self.scope_column).in_(project_ids))

    def select(self) -> Select:
        return self._scoped(select(self.model))

    def get(self, entity_id: int) -> M:
        if not valid_id(entity_id):
            raise NotFound(f"{self.label} {entity_id} not found")
        found = self.session.scalars(self.select().where(self.model.id == entity_id)).first()
        if found is None:
            raise NotFound(f"{self.label} {entity_id} not found")
        return found

    def first(self, *conditions: ColumnElement[bool]) -> M | None:
        return self.session.scalars(self.select().where(*conditions).limit(1)).first()

    def list(
        self,
        *conditions: ColumnElement[bool],
        filters: Mapping[str, Any] | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[M]:
        """Rows in id order; `after` is the keyset cursor (the last id of the previous page)."""
        return list(self.session.scalars(self._list_statement(conditions, filters, after, limit)))

    def list_rows(
        self,
        columns: Iterable[str],
        *conditions: ColumnElement[bool],
        filters: Mapping[str, Any] | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Like `list`, but only the named columns, as plain dicts: no ORM objects to build,
        several times faster for large read-only pages (the API's lists)."""
        names = list(columns)
        stmt = self._list_statement(conditions, filters, after, limit)
        stmt = stmt.with_only_columns(*(getattr(self.model, name) for name in names))
        # zip over plain rows: RowMapping builds a key view per row, which costs more than the query.
        return [dict(zip(names, row, strict=True)) for row in self.session.execute(stmt)]

    def _list_statement(
        self,
        conditions: Iterable[ColumnElement[bool]],
        filters: Mapping[str, Any] | None,
        after: int | None,
        limit: int | None,
    ) -> Select:
        stmt = self.select().where(*conditions)
        for name, value in (filters or {}).items():
            if value is not None:
                stmt = stmt.where(getattr(self.model, name) == value)
        if after is not None:
            stmt = stmt.where(self.model.id > max(min(after, MAX_ID), -MAX_ID))
        stmt = stmt.order_by(self.model.id)
        if limit is not None:
            stmt = stmt.limit(min(limit, MAX_PAGE))
        return stmt

    def add(self, entity: M) -> M:
        self.session.add(entity)
        self.session.flush()
        return entity

    def add_all(self, entities: Iterable[M]) -> None:
        self.session.add_all(list(entities))
        self.session.flush()
