"""Publishing an MQTT 5 message through awscrt's binding with a plain callback (`direct_publish`).

`mqtt5.Client.publish` wraps each publish in a Future, a PublishPacket and, once acknowledged, a
PublishCompletionData and a PubackPacket, then our callback reads them back. For a message without
properties we call the binding it calls, `_awscrt.mqtt5_client_publish`, with the same 13
arguments (read in awscrt/mqtt5.py of the versions crt.CHECKED names) and a callback of our own.
"""

from __future__ import annotations

from collections.abc import Callable

import _awscrt
import awscrt
from awscrt import mqtt5

from iotnotify.crt import decide

Completed = Callable[..., None]
"""Called by awscrt's thread: (error code, QoS, PUBACK reason code or None, reason string or None, ...)."""


def _fits() -> bool:
    return callable(getattr(_awscrt, "mqtt5_client_publish", None)) and hasattr(mqtt5.Client, "publish")


OFF = decide("direct_publish", awscrt.__version__, _fits())
"""Why the shortcut is off ("" when on): then `mqtt5.Client.publish` it is."""
ACTIVE = not OFF


def publish(client: mqtt5.Client, topic: str, payload: bytes, qos: int, retain: bool, completed: Completed) -> None:
    """Publish a message without properties as `client.publish` would; `completed` as Completed says."""
    _awscrt.mqtt5_client_publish(client._binding,  # noqa: SLF001 - the shortcut this module is
                                 qos, payload, retain, topic, None, None, None, None, None, None, None, completed)
