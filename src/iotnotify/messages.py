"""Message: one MQTT message received or to send."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from iotnotify.properties import Properties


@dataclass(slots=True)
class Message:
    """A message as received: topic, payload bytes, QoS, retain flag, receive time (epoch s) and
    its MQTT 5 properties (None when it has none). Nothing changes one once made but `signer`,
    which --verify sets (signing.py); it is not a frozen dataclass because that __init__ sets each
    field through object.__setattr__, four times the cost of this one's, on every message received
    (bench/README.md, "Subscribe")."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    time: float = field(default_factory=time.time)
    properties: Properties | None = None
    ack: Callable[[], None] | None = None  # sends its PUBACK, for a QoS 1 message taken with manual acknowledgement
    signer: str | None = None  # the name --verify's file gives the key that signed it (signing.py)
