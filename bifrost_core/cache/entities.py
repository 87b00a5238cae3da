"""What is cached and when it stops being true: entity reads and token lookups.

Invalidation listens to the event bus, which delivers only after a commit, so a
reader never repopulates the cache with data from a transaction still in flight and
a rolled-back change never evicts anything.
"""

from __future__ import annotations

from bifrost_core.cache.backends import Cache
from bifrost_core.events import bus
from bifrost_core.events.schemas import EventRead
from bifrost_core.users.service import AUTH_CHANGES

ENTITY_TTL = 300
# Also how often a cached token's last-used time is written back.
AUTH_TTL = 60
AUTH_GENERATION = "auth:gen"
# Far longer than any entry lives, so a generation never restarts under a live entry.
GENERATION_TTL = 86400


def entity_key(entity_type: str, entity_id: int) -> str:
    return f"e:{entity_type}:{entity_id}"


def generation_key(entity_type: str, entity_id: int) -> str:
    """Bumped on every change: an entry stored with an older generation is never served.

    This closes the read-then-store race (a reader that loaded the row before a change
    committed cannot store a stale entry that later readers trust).
    """
    return f"g:{entity_type}:{entity_id}"


def token_key(token_hash: str) -> str:
    return f"auth:tok:{token_hash}"


class Invalidator:
    """Subscribes to committed events and drops the cache entries they make stale."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def __call__(self, event: EventRead) -> None:
        # A row that did not exist until this commit cannot be cached: reads of it were 404s.
        if event.entity_id is not None and not event.kind.endswith(".created"):
            self.cache.evict(
                entity_key(event.entity_type, event.entity_id),
                generation_key(event.entity_type, event.entity_id),
                GENERATION_TTL,
            )
        if event.kind in AUTH_CHANGES:
            # One counter for all tokens: cheaper than finding each token of a user.
            self.cache.incr(AUTH_GENERATION, ttl=GENERATION_TTL)

    def install(self) -> Invalidator:
        bus.subscribe(self)
        return self

    def uninstall(self) -> None:
        bus.unsubscribe(self)


_shared: dict[str, Invalidator] = {}


def invalidate_on_commit(redis_url: str) -> None:
    """Make this process's commits evict the shared Redis cache (once per URL).

    Every process that writes (API workers, CLI, flows) calls this when it opens the
    database, so a change made anywhere is visible on the API's next read.
    """
    if redis_url and redis_url not in _shared:
        from bifrost_core.cache.backends import RedisCache

        _shared[redis_url] = Invalidator(RedisCache(redis_url)).install()
