"""Path and query parameters shared by the routers, all bounded so no value reaches the
database that it cannot store."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func

from bifrost_core.db.repository import MAX_ID, MAX_PAGE, Repository
from bifrost_core.jsonbounds import dump_json

if TYPE_CHECKING:
    from api.deps import Ctx

T = TypeVar("T")

Id = Annotated[int, Path(ge=1, le=MAX_ID)]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
After = Annotated[
    int | None, Query(ge=0, le=MAX_ID, description="Cursor: the next_cursor of the previous page")
]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}")]
Status = Annotated[str | None, Query(min_length=1, max_length=64)]
CodeFilter = Annotated[
    str | None, Query(min_length=1, max_length=64, description="Only the row with this code, in any case")
]
NameFilter = Annotated[
    str | None, Query(min_length=1, max_length=64, description="Only the row with this name, in any case")
]
UpdatedSince = Annotated[
    datetime | None, Query(description="Only rows changed at or after this time (no offset: UTC)")
]


class Page(BaseModel, Generic[T]):
    """One page of a list in id order; pass next_cursor as `after` to get the next page."""

    items: list[T]
    next_cursor: int | None


def page(schema: type[BaseModel], rows: list, limit: int) -> Page:
    items = [schema.model_validate(row) for row in rows]
    return Page[schema](items=items, next_cursor=rows[-1].id if len(rows) == limit else None)  # type: ignore[valid-type]


def rows_page(
    repository: Repository,
    schema: type[BaseModel],
    *conditions: Any,
    filters: dict[str, Any] | None = None,
    code: str | None = None,
    after: int | None,
    limit: int,
) -> bytes:
    """A page as JSON straight from database rows, for Read schemas that are plain columns.

    Skips building ORM objects and re-validating them (3-4x faster on big pages); the
    columns are the schema's fields, so the JSON is the same as `page()` would give
    (tests/api/test_api_lists.py holds the two equal). `code`: only the row with that code,
    in any case.
    """
    if code is not None:
        conditions += (func.lower(repository.model.code) == code.lower(),)  # type: ignore[attr-defined]
    rows = repository.list_rows(schema.model_fields, *conditions, filters=filters, after=after, limit=limit)
    next_cursor = rows[-1]["id"] if len(rows) == limit else None
    return dump_json({"items": rows, "next_cursor": next_cursor})


def project_rows(
    ctx: Ctx,
    project_id: int,
    repository: type[Repository],
    schema: type[BaseModel],
    *,
    filters: dict[str, Any] | None = None,
    code: str | None = None,
    updated_since: datetime | None = None,
    after: int | None,
    limit: int,
) -> Response:
    """A page of one project's rows (see `rows_page`), for a caller whose role may read the
    production; `updated_since` keeps the rows changed since then."""
    ctx.project(project_id, "production.read")
    model = repository.model
    conditions = [model.project_id == project_id]  # type: ignore[attr-defined]
    if updated_since is not None:
        conditions.append(model.updated_at >= updated_since)  # type: ignore[attr-defined]
    rows = rows_page(
        repository(ctx.session, ctx.actor),
        schema,
        *conditions,
        filters=filters,
        code=code,
        after=after,
        limit=limit,
    )
    return ctx.respond(rows)


def any_case(column: Any, value: str | None) -> list[ColumnElement[bool]]:
    """The condition that `column` equals `value` whatever their case (as ingest matches codes),
    or none when no value is given: spread it into a list's conditions."""
    return [] if value is None else [func.lower(column) == value.lower()]


# (path, methods) -> the query parameters the route declares, found at its first request.
_QUERY_NAMES: dict[tuple[str, frozenset[str]], frozenset[str]] = {}


async def refuse_unknown_query(request: Request) -> None:
    """An app-wide dependency: a query parameter the route does not declare is a 422, not
    ignored (`?code=` on a list without that filter would otherwise answer every row)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    key = (route.path, frozenset(route.methods))
    known = _QUERY_NAMES.get(key)
    if known is None:
        known = _QUERY_NAMES[key] = frozenset(_query_names(route.dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": "unknown query parameter", "type": "extra_forbidden"}
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names
