"""Liveness and readiness: no token needed, nothing secret in the answers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import state_of
from api.errors import ErrorBody, error_response

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up (it checks nothing else, so it never blocks)."""
    return {"status": "ok"}


def _storage_problem(root: str) -> str | None:
    if "://" in root and not root.startswith("file://"):
        import fsspec

        protocol = root.split("://", 1)[0]
        try:
            filesystem = fsspec.filesystem(protocol)
            return None if filesystem.exists(root) else f"{root} does not exist"
        except Exception as exc:  # any backend error means "not ready"
            return f"{root}: {type(exc).__name__}: {exc}"
    path = Path(root.removeprefix("file://"))
    if path.exists() and not path.is_dir():
        return f"{root} is not a folder"
    # A root not made yet is fine if it can be: the first write creates it.
    existing = next(parent for parent in (path, *path.parents) if parent.exists())
    if not os.access(existing, os.W_OK):
        return f"{root} is not writable"
    return None


def _prefect_problem(url: str) -> str | None:
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + "/health", timeout=2.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if answer.status_code == 200 else f"answered {answer.status_code}"


@router.get("/readyz", response_model=Readiness, responses={503: {"model": ErrorBody}})
def readyz(request: Request) -> Any:
    """Database, cache, storage roots and (when PREFECT_API_URL is set) Prefect all answer."""
    state = state_of(request)
    checks: dict[str, str] = {}
    problems: dict[str, str] = {}
    try:
        state.database.check()
        checks["database"] = "ok"
    except Exception as exc:
        problems["database"] = str(exc)
    try:
        state.cache.ping()
        checks["cache"] = f"ok ({state.cache.kind})"
    except Exception as exc:
        problems["cache"] = f"{state.cache.kind}: {exc}"
    for tier, root in state.settings.tier_roots.items():
        problem = _storage_problem(root)
        if problem:
            problems[f"storage.{tier}"] = problem
        else:
            checks[f"storage.{tier}"] = "ok"
    prefect_url = os.environ.get("PREFECT_API_URL")
    if prefect_url:
        problem = _prefect_problem(prefect_url)
        if problem:
            problems["prefect"] = problem
        else:
            checks["prefect"] = "ok"
    if problems:
        return error_response(503, "not_ready", "not ready: " + ", ".join(problems), {**checks, **problems})
    return JSONResponse({"status": "ready", "checks": checks})
