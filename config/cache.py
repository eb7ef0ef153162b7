"""A Redis cache that degrades instead of failing: with Redis unreachable, reads are misses and writes are dropped.

Pages and API answers are cached (catalog.caching); with a plain RedisCache a dead Redis turned every cached page
into a 500. Through this backend they render uncached instead, and the failure is logged. After a failure the
backend does not try Redis again for RETRY_AFTER_S seconds, so a dead server costs one connection attempt per
process every few seconds rather than one per cache call.

The rate limiter does not use this backend: it must know when its counts are unavailable (it then refuses
submissions with 503, benchmarks.services.check_rate), so it reads the "limits" alias, a plain RedisCache.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5.0
_down_until: dict[str, float] = {}  # per server list, shared by the per-thread backend instances
_lock = threading.Lock()
_UNAVAILABLE = (RedisError, OSError)


class FailOpenRedisCache(RedisCache):
    def _key(self) -> str:
        return ",".join(self._servers)

    def _available(self) -> bool:
        return time.monotonic() >= _down_until.get(self._key(), 0.0)

    def _failed(self, operation: str, exc: BaseException) -> None:
        with _lock:
            first = self._available()
            _down_until[self._key()] = time.monotonic() + RETRY_AFTER_S
        if first:
            log.error("Cache unreachable (%s: %s); serving uncached for %.0f s", operation, exc, RETRY_AFTER_S)

    def _call(self, operation: str, default: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._available():
            return default
        try:
            return getattr(super(), operation)(*args, **kwargs)
        except _UNAVAILABLE as exc:
            self._failed(operation, exc)
            return default

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call("get", default, key, default, version)

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._call("get_many", {}, keys, version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._call("has_key", False, key, version)

    def set(self, key: Any, value: Any, timeout: Any = ..., version: int | None = None) -> None:
        kwargs = {} if timeout is ... else {"timeout": timeout}
        self._call("set", None, key, value, version=version, **kwargs)

    def add(self, key: Any, value: Any, timeout: Any = ..., version: int | None = None) -> bool:
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._call("add", False, key, value, version=version, **kwargs)

    def set_many(self, data: Any, timeout: Any = ..., version: int | None = None) -> list[Any]:
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._call("set_many", [], data, version=version, **kwargs)

    def touch(self, key: Any, timeout: Any = ..., version: int | None = None) -> bool:
        kwargs = {} if timeout is ... else {"timeout": timeout}
        return self._call("touch", False, key, version=version, **kwargs)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._call("delete", False, key, version)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._call("delete_many", None, keys, version)

    def clear(self) -> None:
        self._call("clear", None)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        if not self._available():
            raise ValueError("The cache is unavailable.")  # callers treat it as a missing key, then set (dropped)
        try:
            return super().incr(key, delta, version)
        except _UNAVAILABLE as exc:
            self._failed("incr", exc)
            raise ValueError("The cache is unavailable.") from exc

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.incr(key, -delta, version)
