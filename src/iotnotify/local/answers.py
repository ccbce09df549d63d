"""What the local gateway answers with: AWS IoT Core's reason codes (Developer Guide, "MQTT reason
codes"), what its MQTT 5 CONNACK says of the broker, and the Verdict on each chunk of bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

from iotnotify.local import packets as mqtt

NOT_AUTHORIZED, QUOTA_EXCEEDED, PACKET_TOO_LARGE, CLIENT_ID_INVALID = 0x87, 0x97, 0x95, 0x85
CONNECTION_RATE_EXCEEDED = 0x9F
TOPIC_FILTER_INVALID, TOPIC_NAME_INVALID, MALFORMED, PROTOCOL_ERROR = 0x8F, 0x90, 0x81, 0x82
QOS_NOT_SUPPORTED, SESSION_TAKEN_OVER, TOPIC_ALIAS_INVALID, SUBSCRIPTION_IDS_NOT_SUPPORTED = 0x9B, 0x8E, 0x94, 0xA1
TOPIC_ALIAS_MAXIMUM = 8  # AWS IoT Core's (the developer guide's MQTT page, "Topic aliases")
ANNOUNCED = {mqtt.MAXIMUM_QOS: b"\x01", mqtt.RETAIN_AVAILABLE: b"\x01", mqtt.WILDCARD_AVAILABLE: b"\x01",
             mqtt.SUBSCRIPTION_IDS_AVAILABLE: b"\x00", mqtt.SHARED_AVAILABLE: b"\x01",
             mqtt.TOPIC_ALIAS_MAXIMUM: TOPIC_ALIAS_MAXIMUM.to_bytes(2, "big")}
"""What an MQTT 5 CONNACK of AWS IoT Core says of the broker, in place of Mosquitto's (the developer
guide's MQTT page, "CONNACK properties": Maximum QoS 1, Retain and Wildcard Subscription Available,
Subscription Identifier Available 0; shared subscriptions supported, for MQTT 5 and 3.1.1)."""
FAILURE = 0x80  # MQTT 3.1.1's one SUBACK failure code


@dataclass
class Verdict:
    """What to do with a chunk of bytes: send these on to the broker and to the client, then close
    the connection if `close`; wait `pause` seconds before reading more from the same side (the
    client, or the broker: AWS's 512 KiB a second each way)."""

    # bytearrays: a chunk's packets are appended in place (with bytes, each += copied all before it)
    to_broker: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    close: bool = False
    pause: float = 0.0
    connected_as: str | None = None  # a CONNECT went to the broker with this client id
    forget: str | None = None  # the broker must forget this client id's stored session before to_broker goes
