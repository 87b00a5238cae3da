"""Caches: Redis when BIFROST_REDIS_URL is set, in-process otherwise; see `backends`."""

from bifrost_core.cache.backends import Cache, LocalCache, RedisCache, open_cache

__all__ = ["Cache", "LocalCache", "RedisCache", "open_cache"]
