"""`wait --from A,B,C`: wait for one message from each named sender, not for a number of messages
(one chatty or duplicated sender would make up a count).

Who sent a message: with --verify, the name its file gives the key that signed it (signing.py):
proven. Otherwise the `iotnotify-sender` user property `send --sender NAME` sets: what the sender
says, which anyone holding keys for the topic can say too.
"""

from __future__ import annotations

from collections.abc import Iterator

from iotnotify.errors import UsageError
from iotnotify.messages import Message

SENDER = "iotnotify-sender"  # the user property `send --sender NAME` sets
MAX_NAMES = 1000


def names_of(given: tuple[str, ...]) -> list[str]:
    """--from A,B,C (repeatable): the names in order, each once; UsageError for none or an empty one."""
    names: dict[str, None] = {}
    for text in given:
        for name in text.split(","):
            if not name.strip():
                raise UsageError(f"--from {text!r}: an empty name (give A,B,C)")
            names[name.strip()] = None
    if not names:
        raise UsageError("--from names the senders to wait for: --from A,B,C")
    if len(names) > MAX_NAMES:
        raise UsageError(f"--from: {len(names)} names, at most {MAX_NAMES}")
    return list(names)


class Quorum:
    """The named senders, and which of them a message came from so far; `by_signer`: who signed
    it (--verify) rather than what its `iotnotify-sender` property says."""

    def __init__(self, names: list[str], by_signer: bool = False) -> None:
        self.names, self.by_signer = names, by_signer
        self._came: set[str] = set()

    def sender_of(self, message: Message) -> str | None:
        if self.by_signer:
            return message.signer
        if message.properties is not None:
            for key, value in message.properties.user_properties:
                if key == SENDER:
                    return value
        return None

    def take(self, message: Message) -> bool:
        """Whether `message` is the first from a named sender (it counts)."""
        sender = self.sender_of(message)
        if sender is None or sender in self._came or sender not in self.names:
            return False
        self._came.add(sender)
        return True

    @property
    def missing(self) -> list[str]:
        """The names no message came from yet, in the order given."""
        return [name for name in self.names if name not in self._came]

    @property
    def done(self) -> bool:
        return len(self._came) == len(self.names)

    def arrivals(self, messages: Iterator[Message]) -> Iterator[Message]:
        """The first message from each named sender, as they come, until each came; the others
        are acknowledged and dropped."""
        for message in messages:
            if self.take(message):
                yield message
                if self.done:
                    return
            elif message.ack is not None:
                message.ack()
