"""--dedupe WINDOW: drop a message whose `iotnotify-id` (the user property `send` gives each message
over MQTT 5) was seen less than WINDOW ago. QoS 1 delivers at least once, and `send` publishes again
what was not acknowledged when a connection ended: a deploy hook driven by `on --dedupe` then runs
once. A message without an id always passes.

Memory is bounded whatever peers send: an id is kept as a 16-byte digest (a peer's 60 KB id costs
what a send's 32 characters do), and at most MAX_IDS of them (at AWS IoT Core's 100 messages a
second, 16 minutes of ids); past that the oldest are forgotten before their window ends.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable

from iotnotify.messages import Message
from iotnotify.properties import message_id

MAX_IDS = 100_000


class Dedupe:
    """Admits a message unless its id was admitted less than `window` seconds ago; `on_duplicate`
    hears of each one dropped (`dropped` counts them)."""

    def __init__(self, window: float, on_duplicate: Callable[[Message, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_ids: int = MAX_IDS) -> None:
        self.window, self.on_duplicate, self.clock, self.max_ids = window, on_duplicate, clock, max_ids
        self.dropped = 0
        self._seen: collections.OrderedDict[bytes, float] = collections.OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def admits(self, message: Message) -> bool:
        given = message_id(message.properties)
        if given is None:
            return True
        now = self.clock()
        while self._seen and next(iter(self._seen.values())) <= now - self.window:
            self._seen.popitem(last=False)
        key = hashlib.blake2b(given.encode("utf-8", "surrogateescape"), digest_size=16).digest()
        if key in self._seen:
            self.dropped += 1
            if self.on_duplicate is not None:
                self.on_duplicate(message, given)
            return False
        self._seen[key] = now
        if len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)
        return True
