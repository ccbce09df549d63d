"""AWS IoT Core's HTTPS publish for the local stack: `POST /topics/TOPIC?qos=1&retain=true`, signed
with SigV4 in the Authorization header (service iotdata), on the same port as MQTT over WebSocket.

As AWS IoT Core (developer guide, "HTTPS publish"; the IoT data plane's Publish API): no client id
and no connection to keep; the keys' policies must allow iot:Publish on the topic (and
iot:RetainPublish to retain); a payload over 128 KB is 413, a topic over the limits or a QoS
other than 0 or 1 is 400, keys not allowed 401, a signature not accepted 403. The message goes to
Mosquitto over a short MQTT 3.1.1 connection of the stack's own, and the answer (200) comes once
Mosquitto has it (its PUBACK, at QoS 1). Message properties (contentType, userProperties...) and
AWS's per-account request rate are not emulated: the client does not send properties this way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from iotnotify import limits
from iotnotify.local import packets as mqtt
from iotnotify.local.broker_link import BrokerAddress, exchange
from iotnotify.local.grants import Grants
from iotnotify.local.sigv4 import KnownKeys, UpgradeRefused
from iotnotify.topics import PUBLISH, over_aws_limits, reserved_refusal

TOPICS = "/topics/"
BROKER_TIMEOUT = 5.0  # s for Mosquitto to take the message


@dataclass(frozen=True)
class Answer:
    """An HTTP status and the JSON body AWS's data plane sends with it."""

    status: int
    body: bytes = b"{}"


def refusal(status: int, kind: str, message: str) -> Answer:
    """An error answer as AWS's data plane writes it: {"message": ...} and the exception's name."""
    return Answer(status, json.dumps({"message": message, "__type": kind}).encode())


Verify = Callable[[str, str, Mapping[str, str], bytes], KnownKeys]
"""(method, target, headers, body) -> the keys the request is signed with; UpgradeRefused: 403."""
GrantsOf = Callable[[KnownKeys], "Grants | None"]
"""The policies that decide for these keys (None: permissive, everything allowed)."""


class HttpsPublish:
    """Answers HTTPS publish requests for one local stack."""

    def __init__(self, verify: Verify, grants_of: GrantsOf, broker: BrokerAddress,
                 log: Callable[[str], None] | None = None, published: Callable[[str], None] | None = None) -> None:
        self.published = published or (lambda _topic: None)  # a QoS 1 message went to the broker (StoredSessions)
        self.verify = verify
        self.grants_of = grants_of
        self.broker = broker
        self.log = log or (lambda _line: None)

    async def __call__(self, method: str, target: str, headers: Mapping[str, str],  # noqa: PLR0911 - AWS's answers
                       body: bytes) -> Answer:
        url = urlsplit(target)
        if not url.path.startswith(TOPICS) or len(url.path) == len(TOPICS):
            return refusal(404, "ResourceNotFoundException", f"no such resource: {url.path}")
        if method != "POST":
            return refusal(405, "MethodNotAllowedException", f"{method} is not supported here: use POST")
        try:
            keys = self.verify(method, target, headers, body)
        except UpgradeRefused as e:
            return refusal(403, "ForbiddenException", f"forbidden: {e}")
        topic = unquote(url.path[len(TOPICS):])
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        qos_text, retain_text = query.get("qos", "0"), query.get("retain", "false").lower()
        if qos_text not in ("0", "1") or retain_text not in ("true", "false"):
            return refusal(400, "InvalidRequestException", "qos must be 0 or 1, retain true or false")
        qos, retain = int(qos_text), retain_text == "true"
        grants = self.grants_of(keys)
        if grants is not None:
            refused = _check(grants, topic, retain, len(body))
            if refused is not None:
                self.log(f"HTTPS publish: {json.loads(refused.body)['message']} (HTTP {refused.status})")
                return refused
        try:
            await asyncio.wait_for(self._publish(topic, body, qos, retain), BROKER_TIMEOUT)
        except (OSError, TimeoutError, mqtt.Malformed):
            return refusal(503, "ServiceUnavailableException", "the broker did not take the message")
        if qos and grants is not None:
            self.published(topic)
        return Answer(200)

    async def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Hand the message to Mosquitto; return once it has it (CONNACK, and PUBACK at QoS 1)."""
        await exchange(self.broker, f"iotnotify-https-{os.urandom(6).hex()}", mqtt.publish(topic, payload, qos, retain),
                       (mqtt.PUBACK,) if qos else ())


def _check(grants: Grants, topic: str, retain: bool, size: int) -> Answer | None:
    """What AWS IoT Core answers a publish its rules refuse, or None."""
    if size > limits.MAX_PAYLOAD_BYTES:
        return refusal(413, "RequestEntityTooLargeException", f"payload of {size} bytes is over 128 KB")
    if not topic or over_aws_limits(topic) \
            or "+" in topic or "#" in topic:
        return refusal(400, "InvalidRequestException", f"topic {topic!r} is not a valid topic name")
    reserved = reserved_refusal(topic, PUBLISH)
    if reserved:
        return refusal(401, "UnauthorizedException", f"topic {topic!r}: {reserved}")  # as a policy refusal: our reading
    if not grants.allows("iot:Publish", f"topic/{topic}"):
        return refusal(401, "UnauthorizedException", f"iot:Publish to {topic!r} not allowed")
    if retain and not grants.allows("iot:RetainPublish", f"topic/{topic}"):
        return refusal(401, "UnauthorizedException", f"iot:RetainPublish to {topic!r} not allowed")
    return None
