"""A source of keys (an endpoint URL, AWS credentials), cached while fresh."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from iotnotify import trace
from iotnotify.keys.cache import KeyCache
from iotnotify.keys.model import TemporaryKeys
from iotnotify.keys.view import described
from iotnotify.trace import log


class KeySource:
    """Keys from one place (an endpoint URL, or AWS credentials), cached while fresh; safe to call
    from the MQTT threads. `name` says where they come from and keys the disk cache."""

    def __init__(self, name: str, fetch: Callable[[], TemporaryKeys], cache: KeyCache | None = None) -> None:
        self.name = name
        self.fetch = fetch
        self.cache = cache
        self._lock = threading.Lock()
        self._keys: TemporaryKeys | None = None
        self.fetches = 0

    def invalidate(self) -> None:
        """Forget the keys in hand and cached (the broker refused them): the next get() fetches."""
        with self._lock:
            log.debug("keys: forgotten, with their cache: the broker refused them")
            self._keys = None
            if self.cache is not None:
                self.cache.path(self.name).unlink(missing_ok=True)

    @property
    def current(self) -> TemporaryKeys | None:
        """The keys in hand (the last fetched or loaded), without fetching."""
        return self._keys

    def get(self, refresh: bool = False) -> TemporaryKeys:
        """Fresh keys: the ones in hand or cached if still fresh (unless `refresh`), else fetched."""
        with self._lock:
            if not refresh:
                if self._keys is not None and self._keys.fresh():
                    return self._keys
                if self.cache is not None and (cached := self.cache.load(self.name)) is not None:
                    if trace.on():
                        log.debug("keys: from the cache for %s: %s", self.name, described(cached))
                    self._keys = cached
                    return cached
            started = time.monotonic()
            keys = self.fetch()
            self.fetches += 1
            if trace.on():
                log.debug("keys: fetched from %s in %.0f ms: %s", self.name, (time.monotonic() - started) * 1000,
                          described(keys))
            if self.cache is not None:
                self.cache.save(self.name, keys)
            self._keys = keys
            return keys
