"""Per-request dependencies: the caller, the rate limit, the unit of work, idempotency.

`Ctx` is everything a route needs: one session (one transaction per request), the
actor and the token it came with, and the two ways to answer — `respond` for reads and
`done` for writes, which stores the idempotent answer and commits. Anything not
committed rolls back.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.auth import Authenticator, Caller
from bifrost_core.cache.backends import Cache
from bifrost_core.config import Settings
from bifrost_core.db.database import Database
from bifrost_core.db.replicas import Replicas
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import BifrostError, RateLimited
from bifrost_core.idempotency import service as idempotency
from bifrost_core.jsonbounds import dump_json
from bifrost_core.projects.repository import ProjectRepository
from bifrost_core.scope import Actor
from bifrost_core.users import permissions

RATE_WINDOW = 60


@dataclass
class ApiState:
    settings: Settings
    database: Database
    cache: Cache
    authenticator: Authenticator
    entity_cache: bool
    replicas: Replicas | None = None

    def database_for(self, request: Request, user_id: int | None) -> Database:
        """Reads (GET, HEAD) go to a read replica that has replayed the caller's last write."""
        if self.replicas is None or request.method not in ("GET", "HEAD"):
            return self.database
        (written,) = self.cache.get_many([_written_key(user_id)])
        return self.replicas.for_read(None if written is None else int(written))

    def note_write(self, user_id: int | None) -> None:
        """After a commit: what a replica must replay before it serves this caller's reads.
        Kept for longer than a replica may lag: by then any replica taking reads has it."""
        if self.replicas is not None:
            ttl = int(self.replicas.max_lag) + 60
            self.cache.set(_written_key(user_id), str(self.replicas.written()).encode(), ttl)


def _written_key(user_id: int | None) -> str:
    return f"written:user:{user_id}"


class BadRequest(BifrostError):
    status_code = 400
    code = "bad_request"


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    key: str
    request_hash: str


async def _idempotency(request: Request) -> IdempotencyClaim | None:
    """Read the key and hash the raw body (async: the body is read once and cached)."""
    if request.method != "POST":
        return None
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise BadRequest("Idempotency-Key must be 1 to 255 printable characters")
    digest = hashlib.sha256(request.url.path.encode() + b"\0" + await request.body()).hexdigest()
    return IdempotencyClaim(key=key, request_hash=digest)


def state_of(request: Request) -> ApiState:
    return request.app.state.bifrost


def _check_rate(state: ApiState, caller: Caller) -> None:
    """At most `api_rate_limit` requests a minute per user, all of their tokens together, so
    that minting tokens does not multiply it. (A per-token limit of the same size could never
    bind first: a token's requests are a share of its user's.)"""
    limit = state.settings.api_rate_limit
    if not limit:
        return
    window = int(time.time() // RATE_WINDOW)
    count = state.cache.incr(f"rl:user:{caller.actor.user_id}:{window}", ttl=RATE_WINDOW + 1)
    if count > limit:
        retry = RATE_WINDOW - int(time.time()) % RATE_WINDOW
        raise RateLimited(f"rate limit of {limit} requests per minute per user exceeded", retry_after=retry)


class Ctx:
    __slots__ = ("_claim_id", "_uow", "actor", "session", "state", "token_id")

    def __init__(self, state: ApiState, actor: Actor, uow: UnitOfWork, token_id: int | None = None) -> None:
        self.state = state
        self.actor = actor
        # The token the request came with: tokens made with it are bounded by it.
        self.token_id = token_id
        self._uow = uow
        self.session: Session = uow.session
        self._claim_id: int | None = None

    @property
    def on_replica(self) -> bool:
        """This request reads from a read replica (which may lag other callers' writes)."""
        return self._uow.database is not self.state.database

    def require(self, action: str, project_id: int) -> None:
        permissions.require(self.actor, action, project_id)

    def project(self, project_id: int, action: str) -> None:
        """Check that the project is visible (else 404) and the caller's role allows `action`."""
        self.see_project(project_id)
        self.require(action, project_id)

    def see_project(self, project_id: int) -> None:
        """404 unless the caller can see the project."""
        if project_id not in self.actor.roles:
            # A membership proves the project exists; anyone else (admins too) needs a lookup.
            ProjectRepository(self.session, self.actor).get(project_id)

    def require_admin(self, what: str) -> None:
        permissions.require_admin(self.actor, what)

    def respond(self, body: BaseModel | bytes, status: int = 200) -> Response:
        content = body if isinstance(body, bytes) else dump_json(body)
        return Response(content, status_code=status, media_type="application/json")

    def done(self, body: BaseModel | None, status: int = 200) -> Response:
        """Finish a write: record the idempotent answer, commit, answer."""
        content = b"" if body is None else dump_json(body)
        if self._claim_id is not None:
            idempotency.complete(
                self.session, claim_id=self._claim_id, status_code=status, body=content.decode()
            )
        self._uow.commit()
        self.state.note_write(self.actor.user_id)
        if body is None:
            return Response(status_code=status)
        return Response(content, status_code=status, media_type="application/json")


def get_ctx(
    request: Request, claim: Annotated[IdempotencyClaim | None, Depends(_idempotency)]
) -> Iterator[Ctx]:
    state = state_of(request)
    client = request.client.host if request.client else None
    caller = state.authenticator.caller(request.headers.get("authorization"), client)
    request.state.user_id = caller.actor.user_id
    _check_rate(state, caller)
    database = state.database_for(request, caller.actor.user_id)
    with UnitOfWork(database) as uow:
        if database is not state.database and not _connects(uow.session):
            # The replica went down since its state was read: this read, and the next ones
            # until it answers again, go to the primary.
            state.replicas.mark_down(database)  # type: ignore[union-attr]
            uow.session.close()
            uow.database, uow.session = state.database, state.database.session()
        ctx = Ctx(state, caller.actor, uow, caller.token_id)
        if claim is not None:
            ctx._claim_id = idempotency.claim(
                uow.session,
                user_id=caller.actor.user_id,  # type: ignore[arg-type]
                key=claim.key,
                request_hash=claim.request_hash,
            )
        yield ctx


def _connects(session: Session) -> bool:
    try:
        session.connection()  # checks a connection out of the pool, which pings it
    except OperationalError:
        return False
    return True


CtxDep = Annotated[Ctx, Depends(get_ctx)]
