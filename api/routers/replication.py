"""Storage replicas and their lag (admin): what `bifrost storage replicas` shows."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import CtxDep
from bifrost_core.replication import service as replication

router = APIRouter(tags=["storage"])


class ReplicaLagRead(BaseModel):
    tier: str
    replica: str
    blobs: int
    bytes: int
    oldest_seconds: float | None
    replicated: int


class ReplicaList(BaseModel):
    replicas: list[ReplicaLagRead]


@router.get("/storage/replicas", response_model=ReplicaList)
def list_replicas(ctx: CtxDep) -> Response:
    """Each tier's replicas with how far each is behind: blobs and bytes not yet copied and
    verified there, and the age in seconds of the oldest of them (null when none is)."""
    ctx.require_admin("read the storage replicas")
    settings = ctx.state.settings
    lags = replication.lag(ctx.state.database, replication.configured(ctx.state.database, settings))
    return ctx.respond(ReplicaList(replicas=[ReplicaLagRead(**vars(lag)) for lag in lags]))
