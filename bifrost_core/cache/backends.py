"""Two cache backends with one small interface: bytes in, bytes out, counters for limits.

The cache is an optimisation, never the source of truth: a Redis outage makes reads
miss (and the database answer) instead of failing requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Cache(Protocol):
    kind: str

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    def set(self, key: str, value: bytes, ttl: int) -> None: ...

    def delete(self, *keys: str) -> None: ...

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter that expires `ttl` seconds after it was created."""
        ...

    def evict(self, key: str, generation_key: str, ttl: int) -> None:
        """Drop `key` and bump its generation counter (in one round trip for Redis)."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class LocalCache:
    """In-process LRU with expiry; one per process, so only right for a single worker."""

    kind = "local"

    def __init__(self, max_entries: int = 50_000) -> None:
        self._data: OrderedDict[str, tuple[float, bytes | int]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def _live(self, key: str, now: float) -> bytes | int | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[0] < now:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return item[1]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = time.monotonic()
        with self._lock:
            values = [self._live(key, now) for key in keys]
        return [str(value).encode() if isinstance(value, int) else value for value in values]

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def incr(self, key: str, ttl: int) -> int:
        now = time.monotonic()
        with self._lock:
            current = self._live(key, now)
            if isinstance(current, int):
                expires = self._data[key][0]
                count = current + 1
            else:
                expires, count = now + ttl, 1
            self._data[key] = (expires, count)
            return count

    def evict(self, key: str, generation_key: str, ttl: int) -> None:
        self.incr(generation_key, ttl)
        self.delete(key)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache:
    """Redis, shared by every worker and host; keys carry a prefix so databases can be shared."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "bifrost:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._errors = (redis.RedisError, OSError)
        self.prefix = prefix

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            return self._redis.mget([self.prefix + key for key in keys])
        except self._errors as exc:
            log.warning("redis read failed, reading the database instead: %s", exc)
            return [None] * len(keys)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        try:
            self._redis.set(self.prefix + key, value, ex=ttl)
        except self._errors as exc:
            log.warning("redis write failed: %s", exc)

    def delete(self, *keys: str) -> None:
        try:
            self._redis.delete(*(self.prefix + key for key in keys))
        except self._errors:
            # A stale entry would outlive the change: say so loudly, the TTL bounds it.
            log.exception("redis invalidation failed for %s", keys)

    def incr(self, key: str, ttl: int) -> int:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(self.prefix + key)
            pipe.expire(self.prefix + key, ttl, nx=True)
            return int(pipe.execute()[0])
        except self._errors as exc:
            log.warning("redis counter failed, not limiting: %s", exc)
            return 0

    def evict(self, key: str, generation_key: str, ttl: int) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(self.prefix + generation_key)
            pipe.expire(self.prefix + generation_key, ttl, nx=True)
            pipe.delete(self.prefix + key)
            pipe.execute()
        except self._errors:
            log.exception("redis invalidation failed for %s", key)

    def ping(self) -> None:
        self._redis.ping()

    def close(self) -> None:
        self._redis.close()


def open_cache(redis_url: str) -> Cache:
    return RedisCache(redis_url) if redis_url else LocalCache()
