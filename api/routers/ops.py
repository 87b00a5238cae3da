"""Liveness and readiness: no token needed, nothing secret in the answers."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import state_of
from api.errors import ErrorBody, error_response
from bifrost_core.ingest.roots import RootProbes

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


# How long a tier root's check (a probe written and removed) is reused: a load balancer
# asking every second must not write to the stores every second.
ROOT_CHECK_SECONDS = 30.0


def _root_probes(request: Request) -> RootProbes:
    """The app's root checks, made at its first readiness request."""
    probes = getattr(request.app.state, "root_probes", None)
    if probes is None:
        probes = request.app.state.root_probes = RootProbes(max_age=ROOT_CHECK_SECONDS)
    return probes


def _prefect_problem(url: str) -> str | None:
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + "/health", timeout=2.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if answer.status_code == 200 else f"answered {answer.status_code}"


@router.get("/readyz", response_model=Readiness, responses={503: {"model": ErrorBody}})
def readyz(request: Request) -> Any:
    """Database, cache, every tier root in use (the studio's and each project's: it exists
    and takes a write) and, when PREFECT_API_URL is set, Prefect all answer."""
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
    try:
        roots = _root_probes(request).problems(state.database, state.settings)
    except Exception as exc:  # the projects' tiers are read from the database
        roots = {"storage": f"cannot list the tier roots: {exc}"}
    for label, problem in roots.items():
        if problem:
            problems[label] = problem
        else:
            checks[label] = "ok"
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
