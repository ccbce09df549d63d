"""Which received messages a command takes: none on a topic an `--exclude` filter matches (MQTT
filter syntax, as mosquitto_sub -T), only those whose payload a `--grep` pattern finds something
in. What it does not take is acknowledged and dropped: the broker need not send it again."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iotnotify.errors import UsageError
from iotnotify.messages import Message
from iotnotify.topics import check_filter, filter_matches, shared_parts

if TYPE_CHECKING:
    from iotnotify.dedupe import Dedupe
    from iotnotify.signing import Verifier


@dataclass(frozen=True)
class Selection:
    """The --exclude filters and the --grep pattern of a command (each optional); `tail`'s --grep
    looks in the topic too (`topics_too`)."""

    exclude: tuple[str, ...] = ()
    grep: re.Pattern[str] | None = None
    topics_too: bool = False

    def __bool__(self) -> bool:
        return bool(self.exclude) or self.grep is not None

    def admits(self, message: Message) -> bool:
        """Whether the command takes `message` (a payload that is not UTF-8 is searched with each
        undecodable byte as U+FFFD)."""
        if any(filter_matches(f, message.topic) for f in self.exclude):
            return False
        if self.grep is None or (self.topics_too and self.grep.search(message.topic)):
            return True
        return self.grep.search(message.payload.decode("utf-8", "replace")) is not None

    def describe(self) -> str:
        """A few words for tail's footer: `grep 'x'`, `excluding a/#`."""
        words = [f"grep {self.grep.pattern!r}"] if self.grep is not None else []
        if self.exclude:
            words.append("excluding " + ", ".join(self.exclude))
        return ", ".join(words)


def selection_of(exclude: tuple[str, ...], grep: str | None, topics_too: bool = False) -> Selection:
    """The Selection of --exclude and --grep; UsageError for a filter MQTT refuses or a bad pattern."""
    for topic_filter in exclude:
        try:
            check_filter(topic_filter, aws=False)
        except UsageError as e:
            raise UsageError(f"--exclude: {e}") from None
        if shared_parts(topic_filter):  # a message's topic is never one: it would match nothing
            raise UsageError(f"--exclude {topic_filter}: a shared subscription, not a topic filter (give the "
                             "filter after $share/GROUP/)")
    try:
        pattern = re.compile(grep) if grep is not None else None
    except re.error as e:
        raise UsageError(f"--grep {grep!r} is not a valid pattern: {e}") from None
    return Selection(tuple(exclude), pattern, topics_too)


def screened(messages: Iterator[Message], selection: Selection | None = None,
             dedupe: Dedupe | None = None, verifier: Verifier | None = None) -> Iterator[Message]:
    """The messages `selection` (--exclude, --grep), then `verifier` (--verify), then `dedupe`
    (--dedupe) admit, `messages` themselves when none applies; the others are acknowledged (a QoS 1
    one taken with manual acknowledgement: the broker need not send it again) and dropped."""
    admitted: list[Callable[[Message], bool]] = [*([selection.admits] if selection else []),
                                                 *([verifier.admits] if verifier is not None else []),
                                                 *([dedupe.admits] if dedupe is not None else [])]
    return _kept(messages, admitted) if admitted else messages


def _kept(messages: Iterator[Message], admitted: list[Callable[[Message], bool]]) -> Iterator[Message]:
    for message in messages:
        if all(admits(message) for admits in admitted):
            yield message
        elif message.ack is not None:
            message.ack()
