"""How a `send` goes: through a running agent, over HTTPS (AWS IoT Core's POST /topics/...) or over
an MQTT connection of its own (`send --via auto|mqtt|https`, IOTNOTIFY_VIA). Decided from the
command's flags and settings alone, before anything is imported for sending (the quick path,
quick_https.py, decides here and leaves the rest to the CLI without having loaded send.py)."""

from __future__ import annotations

VIAS = ("auto", "mqtt", "https")


def goes_over_https(via: str, payloads: object, records: bool, connections: int, will: object,
                    properties: object, client_id: str | None, protocol: str) -> bool:
    """Whether a send publishes over HTTPS (mqtt/https.py): when asked to (`via` "https"; UsageError
    for what only MQTT can do), or by default ("auto") for one message known in advance (`payloads`
    a list or tuple of one) that needs nothing of MQTT: no will, properties, client id or MQTT
    3.1.1, one connection. Two round trips on the network instead of four."""
    from iotnotify.errors import UsageError
    from iotnotify.settings import Protocol

    if via == "https":
        if will is not None:
            raise UsageError("--will-topic needs an MQTT connection: not with --via https")
        if connections > 1:
            raise UsageError("--connections needs MQTT: not with --via https")
        if properties:
            raise UsageError("message properties need MQTT: not with --via https")
        return True
    return via == "auto" and isinstance(payloads, (list, tuple)) and len(payloads) == 1 and not records \
        and connections == 1 and will is None and not properties and client_id is None and protocol == Protocol.V5
