"""One error shape for every failure: `{"error": {"code", "message", "details"}}`.

Expected failures come from `bifrost_core.errors` and carry their own HTTP status; the
handlers below also translate what a database or the framework can raise, so that no
input ever produces a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bifrost_core.errors import BifrostError
from bifrost_core.idempotency.service import Replay

log = logging.getLogger("bifrost.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every route so the OpenAPI schema tells clients the truth.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in _HTTP_CODES.items()
    if status not in (405, 415)
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details or {}}},
        status_code=status,
        headers=headers,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _validation_errors(errors: Any) -> list[dict[str, Any]]:
    # Echoing the input back could be megabytes; location, message and type are enough.
    return [
        {
            "loc": _jsonable(list(error.get("loc", ()))),
            "msg": str(error.get("msg", "")).removeprefix("Value error, "),
            "type": error.get("type"),
        }
        for error in errors
    ]


def _database_reason(exc: StatementError) -> str:
    lines = str(exc.orig or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def install(app: FastAPI) -> None:
    @app.exception_handler(BifrostError)
    async def bifrost_error(_request: Request, exc: BifrostError) -> Response:
        status = exc.status_code if exc.status_code < 500 or exc.status_code == 503 else 503
        retry = exc.details.get("retry_after")
        headers = {"Retry-After": str(retry)} if retry is not None else None
        return error_response(status, exc.code, exc.message, _jsonable(exc.details), headers=headers)

    @app.exception_handler(Replay)
    async def replay(_request: Request, exc: Replay) -> Response:
        return Response(
            exc.body,
            status_code=exc.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        errors = _validation_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return error_response(422, "invalid_input", f"{where}: {first['msg']}", {"errors": errors})

    @app.exception_handler(ValidationError)
    async def invalid_value(_request: Request, exc: ValidationError) -> Response:
        # A schema a route builds from the request (e.g. a flow's parameters) refused it.
        errors = _validation_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid value"}
        where = ".".join(str(part) for part in first["loc"])
        return error_response(
            422, "invalid_input", f"{where}: {first['msg']}".lstrip(": "), {"errors": errors}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(IntegrityError)
    async def integrity_error(_request: Request, exc: IntegrityError) -> Response:
        # A concurrent writer won a race the service's own checks could not see.
        return error_response(409, "conflict", f"conflicting change: {_database_reason(exc)}")

    @app.exception_handler(DataError)
    async def data_error(_request: Request, exc: DataError) -> Response:
        # Values the schema let through but the database cannot store (out of range, NUL bytes).
        return error_response(422, "invalid_input", f"value not storable: {_database_reason(exc)}")

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> Response:
        log.warning("database error: %s", _database_reason(exc))
        return error_response(503, "database_unavailable", "the database is unavailable")

    @app.exception_handler(StatementError)
    async def statement_error(_request: Request, exc: StatementError) -> Response:
        if isinstance(exc.orig, OverflowError | ValueError):
            # SQLite refuses integers beyond 64 bits while binding them.
            return error_response(422, "invalid_input", f"value not storable: {exc.orig}")
        log.exception("unexpected database error")
        return error_response(500, "internal_error", "internal error")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")
