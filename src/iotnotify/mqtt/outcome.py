"""What became of a published message (Outcome), and the broker's reason codes in words."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from iotnotify.shown import shown

NOT_AUTHORIZED, SESSION_TAKEN_OVER, MQTT311_FAILURE = 0x87, 0x8E, 0x80
CONNECTION_RATE_EXCEEDED = 0x9F  # a CONNECT too soon after the last with its client id (AWS: 1 a second)
REASONS = {  # MQTT 5.0, 2.4 "Reason Code": the codes a broker sends a client
    0x10: "no matching subscribers", 0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version", 0x85: "client identifier not valid",
    0x86: "bad user name or password", 0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy",
    0x8A: "banned", 0x8B: "server shutting down", 0x8C: "bad authentication method", 0x8D: "keep alive timeout",
    0x8E: "session taken over", 0x8F: "topic filter invalid", 0x90: "topic name invalid",
    0x91: "packet identifier in use", 0x93: "receive maximum exceeded", 0x94: "topic alias invalid",
    0x95: "packet too large", 0x96: "message rate too high", 0x97: "quota exceeded", 0x98: "administrative action",
    0x99: "payload format invalid", 0x9A: "retain not supported", 0x9B: "QoS not supported",
    0x9C: "use another server", 0x9D: "server moved", 0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded", 0xA0: "maximum connect time", 0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}


class Kind(enum.Enum):
    """What became of a message handed to a transport."""

    ACKED = "acked"  # the broker took it (QoS 1: a PUBACK of success; QoS 0: written)
    REFUSED = "refused"  # the broker said no: Outcome.code (0x80 or more), Outcome.text its reason string
    CLOSED = "closed"  # MQTT 3.1.1: the broker closed the connection right after it, AWS IoT Core's refusal there
    LOST = "lost"  # no answer: the connection went first (or a server error); worth sending again


@dataclass(frozen=True, slots=True)
class Outcome:
    """A message's outcome: its kind, and for a refusal the reason code and the broker's reason string."""

    kind: Kind
    code: int = 0
    text: str | None = None

    @property
    def acked(self) -> bool:
        return self.kind is Kind.ACKED

    @property
    def not_authorized(self) -> bool:
        """The refusal AWS IoT Core gives when the keys' policy does not allow the topic."""
        return self.kind is Kind.CLOSED or (self.kind is Kind.REFUSED and self.code == NOT_AUTHORIZED)


ACKED, LOST, CLOSED = Outcome(Kind.ACKED), Outcome(Kind.LOST), Outcome(Kind.CLOSED)
"""The outcomes without a code: made once, as a publish completes thousands of times a second."""
OnDone = Callable[[Outcome], None]


def refused(code: int, text: str | None = None) -> Outcome:
    """The outcome of a refusal with reason code `code` (0x80 or more) and the broker's reason string."""
    return Outcome(Kind.REFUSED, code, text or None)


def reason(code: int, text: str | None = None) -> str:
    """An MQTT reason code as words, '0x87 not authorized', with the broker's reason string if it
    sent one: '0x97 quota exceeded (too many subscriptions)'."""
    words = f"0x{code:02X} {REASONS.get(code, 'success' if code < 0x80 else 'refused')}"
    return f"{words} ({shown(text)})" if text else words
