"""Bearer tokens to Actors, with the lookup cached (Redis or in-process).

A cached entry is trusted until the auth generation moves (any token, user or
membership change bumps it, after commit) or until AUTH_TTL passes; on a miss the
token is authenticated against the database, which also writes its last-used time.
So last_used_at is exact to within AUTH_TTL seconds.

Without Redis each process has its own cache, and a change committed elsewhere (another
API worker, `bifrost token revoke`) does not bump it; so the generation also carries
what the database has recorded of such changes, read at most once per REVOCATION_POLL
seconds: a revoked token, a removed membership or a deactivated user stops working
everywhere within that second.

A client address whose tokens fail `failure_limit` times in a minute is refused (429)
until the minute ends, before the database is asked: guessing and floods of bad tokens
cost a cache read each. Tokens it used successfully before, still cached, keep working.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from bifrost_core.cache.backends import Cache
from bifrost_core.cache.entities import AUTH_GENERATION, AUTH_TTL, token_key
from bifrost_core.db.base import utcnow
from bifrost_core.db.database import Database
from bifrost_core.db.uow import UnitOfWork
from bifrost_core.errors import RateLimited, Unauthenticated
from bifrost_core.scope import Actor
from bifrost_core.users import service as users

# Failed authentications are counted per client address over windows of this many seconds.
FAILURE_WINDOW = 60
# Without a shared cache, how often a process reads the last change of tokens, users and
# memberships from the database.
REVOCATION_POLL = 1.0


@dataclass(frozen=True, slots=True)
class Caller:
    actor: Actor
    token_id: int


class Authenticator:
    def __init__(self, database: Database, cache: Cache, *, failure_limit: int = 0) -> None:
        self.database = database
        self.cache = cache
        self.failure_limit = failure_limit
        self._poll = cache.kind != "redis"
        # (auth changes the database has recorded, monotonic time they were read)
        self._changes_seen = ("", float("-inf"))

    def caller(self, authorization: str | None, client: str | None = None) -> Caller:
        if not authorization:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 256:
            raise Unauthenticated("invalid or expired token")
        token_hash = users.hash_token(secret)
        key = token_key(token_hash)
        cached, counter, failures = self.cache.get_many([key, AUTH_GENERATION, _failures_key(client)])
        generation = self._generation(counter)
        if cached is not None:
            entry = json.loads(cached)
            if entry["gen"] == generation:
                return _caller_from(entry)
        self._refuse_if_limited(client, failures)
        try:
            with UnitOfWork(self.database) as uow:
                actor, token = users.authenticate(uow.session, secret)
                uow.commit()
        except Unauthenticated:
            self.count_failure(client)
            raise
        entry = {
            "gen": generation,
            "token_id": token.id,
            "user_id": actor.user_id,
            "username": actor.username,
            "is_admin": actor.is_admin,
            "roles": [[project_id, role] for project_id, role in actor.roles.items()],
        }
        ttl = AUTH_TTL
        if token.expires_at is not None:
            expires_at = token.expires_at
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=utcnow().tzinfo)
            # Never serve a token from the cache past its expiry.
            ttl = min(ttl, int((expires_at - utcnow()).total_seconds()))
        if ttl > 0:
            self.cache.set(key, json.dumps(entry).encode(), ttl)
        return Caller(actor=actor, token_id=token.id)

    def refuse_if_limited(self, client: str | None) -> None:
        """429 once the address has used up its failed authentications of this minute (the
        web log-in's passwords count with the tokens)."""
        self._refuse_if_limited(client, self.cache.get_many([_failures_key(client)])[0])

    def _refuse_if_limited(self, client: str | None, failures: bytes | None) -> None:
        if self.failure_limit and int(failures or 0) >= self.failure_limit:
            retry = FAILURE_WINDOW - int(time.time()) % FAILURE_WINDOW
            raise RateLimited(
                f"too many failed authentications from {client or 'this address'}; retry in {retry} s",
                retry_after=retry,
            )

    def count_failure(self, client: str | None) -> None:
        if self.failure_limit:
            self.cache.incr(_failures_key(client), ttl=FAILURE_WINDOW + 1)

    def _generation(self, counter: bytes | None) -> str:
        """What a cached entry must have been stored under to be trusted now."""
        if not self._poll:
            return str(int(counter or 0))
        seen, read_at = self._changes_seen
        now = time.monotonic()
        if now - read_at >= REVOCATION_POLL:
            with UnitOfWork(self.database) as uow:
                seen = users.auth_changes_seen(uow.session)
            self._changes_seen = (seen, now)
        return f"{int(counter or 0)}:{seen}"


def _failures_key(client: str | None) -> str:
    return f"authfail:{client or 'unknown'}:{int(time.time() // FAILURE_WINDOW)}"


def _caller_from(entry: dict) -> Caller:
    actor = Actor(
        user_id=entry["user_id"],
        username=entry["username"],
        is_admin=entry["is_admin"],
        roles={project_id: role for project_id, role in entry["roles"]},
    )
    return Caller(actor=actor, token_id=entry["token_id"])
