"""One client connection held to AWS IoT Core's rules, between the wss front and Mosquitto.

Mosquitto does the MQTT. The gateway reads each packet on its way and does what AWS IoT Core does
and Mosquitto does not: it evaluates the keys' policies (iot:Connect, iot:Publish and
iot:RetainPublish, iot:Subscribe, iot:Receive on every delivery), enforces the broker's limits and
its throttles (the client's publishes; the pace of what it is sent: local/outbound.py), keeps the
account's rules across connections (local/account.py), says what happens (local/lifecycle.py), and
refuses the way AWS IoT Core refuses (local/answers.py), in MQTT 5 with a reason code and in MQTT
3.1.1 mostly by closing the connection. docs/local-stack.md ("Local stack vs AWS IoT Core") has the
table of what is emulated and the AWS documentation each row follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from iotnotify import limits
from iotnotify.local import packets as mqtt
from iotnotify.local.account import Away, ConnectRate, StoredSessions
from iotnotify.local.answers import (
    ANNOUNCED,
    CLIENT_ID_INVALID,
    CONNECTION_RATE_EXCEEDED,
    FAILURE,
    MALFORMED,
    NOT_AUTHORIZED,
    PACKET_TOO_LARGE,
    PROTOCOL_ERROR,
    QOS_NOT_SUPPORTED,
    QUOTA_EXCEEDED,
    SESSION_TAKEN_OVER,
    SUBSCRIPTION_IDS_NOT_SUPPORTED,
    TOPIC_ALIAS_INVALID,
    TOPIC_ALIAS_MAXIMUM,
    TOPIC_FILTER_INVALID,
    TOPIC_NAME_INVALID,
    Verdict,
)
from iotnotify.local.grants import Grants
from iotnotify.local.lifecycle import (
    AUTH_ERROR,
    CLIENT_ERROR,
    CLIENT_INITIATED_DISCONNECT,
    DUPLICATE_CLIENTID,
    MQTT_KEEP_ALIVE_TIMEOUT,
    SERVER_INITIATED_DISCONNECT,
    WEBSOCKET_TTL_EXPIRATION,
    Presence,
)
from iotnotify.local.outbound import DISCARD, Outbound
from iotnotify.local.subscriptions import Subscriptions
from iotnotify.server.policy import iot_arn
from iotnotify.throttle import TokenBucket
from iotnotify.topics import PUBLISH, SUBSCRIBE, over_aws_limits, reserved_refusal

FRAME_LIMIT = limits.MAX_PAYLOAD_BYTES + 64 * 1024  # a longer packet cannot hold a payload AWS accepts
RECEIVE_CACHE = 10_000  # topics whose iot:Receive decision is remembered per connection

Log = Callable[[str], None]


class Gateway:
    """The rules for one connection; `from_client` and `from_broker` take bytes as they arrive."""

    def __init__(self, grants: Grants, log: Log | None = None, clock: Callable[[], float] = time.monotonic,
                 max_duration: float | None = limits.MAX_CONNECTION_DURATION,
                 connects: ConnectRate | None = None, sessions: StoredSessions | None = None,
                 presence: Presence | None = None) -> None:
        self.grants = grants
        self.presence = presence  # the connection's lifecycle events (None: none published)
        self.connects = connects  # the stack's, shared by its connections (None: no connect rate)
        self.sessions = sessions or StoredSessions()  # the stack's MQTT 3.1.1 sessions left, and their expiry
        self._persistent = False  # this connection holds a persistent session: the broker keeps it when it ends
        self._away: Away | None = None  # its session's record from when its last client left
        self._filters_known = True  # all its filters are known (not a session resumed without a record)
        self._expiry_said: int | None = None  # the session expiry the CONNACK says, if not the client's
        self.max_duration = max_duration  # s a connection may last (AWS: a WebSocket one, 24 hours)
        self._ends = float("inf") if max_duration is None else clock() + max_duration
        self.log = log or (lambda _line: None)
        self.level: int | None = None  # 4: MQTT 3.1.1, 5: MQTT 5, once CONNECT arrived
        self.client_id = "?"
        self.subscriptions = Subscriptions()
        self.closed = False
        self.clock = clock
        self._throttled, self._throttle_noted = 0, float("-inf")  # the first is noted at once
        self._server_keep_alive: int | None = None
        self._keep_alive = float("inf")  # s the broker waits for a packet from the client
        self._heard = clock()  # when the client last sent something
        self._from_client = mqtt.Framer(FRAME_LIMIT)
        self._from_broker = mqtt.Framer()
        self._publishes = TokenBucket(limits.PUBLISH_RATE, limits.PUBLISH_RATE, clock)
        self._bytes = TokenBucket(limits.THROUGHPUT, limits.THROUGHPUT, clock)
        self.outbound = Outbound(clock)  # the pace of what goes to the client
        self._discarded = 0  # messages to the client over the outbound throttle, since the last line
        self.resumed = False  # the CONNACK said session present: the broker may hold filters and messages for it
        # packet id -> our SUBACK codes (None where the broker answers), and the filters it answers for
        self._aliases: dict[int, str] = {}  # topic aliases of the client's PUBLISHes
        self._broker_aliases: dict[int, str] = {}
        self._receive: dict[str, bool] = {}

    @property
    def v5(self) -> bool:
        return self.level == 5

    def _note(self, what: str) -> None:
        self.log(f"client {self.client_id}: {what}")

    def _refuse(self, out: Verdict, code: int, why: str, connack: bool = False) -> bool:
        """End the connection as AWS IoT Core does: MQTT 5 says why (CONNACK or DISCONNECT), 3.1.1 just
        closes. Returns True (the connection ends)."""
        self._note(f"{why}: connection closed" + (f" (reason 0x{code:02X})" if self.v5 else ""))
        self._end(AUTH_ERROR if code == NOT_AUTHORIZED else CLIENT_ERROR)
        if self.v5:
            out.to_client += mqtt.connack(code, True) if connack else mqtt.disconnect(code)
        out.close = self.closed = True
        return True

    def _outlived(self, out: Verdict) -> bool:
        """Whether the connection is older than it may be: then it ends now, at the first message
        either way, as AWS ends a WebSocket connection after 24 hours ("automatically closed when an
        attempt is made to send a message by the client or server"), saying nothing (MQTT 5 too)."""
        if self.clock() < self._ends:
            return False
        self._note(f"connected longer than {self.max_duration:g} s (AWS's WebSocket connection duration): "
                   "connection closed")
        self._end(WEBSOCKET_TTL_EXPIRATION)
        out.close = self.closed = True
        return True

    def from_client(self, data: bytes) -> Verdict:
        """Bytes from the client: what goes on to the broker, what the gateway answers itself."""
        out = Verdict()
        if self.closed or self._outlived(out):
            return out
        self._heard = self.clock()
        try:
            for packet in self._from_client.feed(data):
                if self._client_packet(packet, out):
                    return out
        except mqtt.TooLarge:
            self._refuse(out, PACKET_TOO_LARGE, "packet over AWS IoT Core's 128 KB payload limit")
            return out
        except mqtt.Malformed as e:
            self._refuse(out, MALFORMED, f"malformed packet ({e})")
            return out
        self._bytes.spend(len(data))
        out.pause = self._bytes.delay(0)  # over 512 KiB/s: read the rest later
        return out

    def _client_packet(self, p: mqtt.Packet, out: Verdict) -> bool:
        """Handle one packet from the client; True if the connection ends here."""
        kind = p.kind
        if self.level is None:
            if kind != mqtt.CONNECT:
                return self._refuse(out, PROTOCOL_ERROR, "first packet is not CONNECT")
            return self._connect(p, out)
        if kind == mqtt.PUBLISH:
            return self._publish(p, out)
        if kind == mqtt.SUBSCRIBE:
            return self._subscribe(p, out)
        if kind == mqtt.UNSUBSCRIBE:
            filters = [f for f, _ in mqtt.parse_subscribe(p, self.v5, unsubscribe=True).entries]
            self.subscriptions.dropped(filters)
            if self.presence is not None:
                self.presence.unsubscribed(filters)
        elif kind == mqtt.DISCONNECT:
            self._end(CLIENT_INITIATED_DISCONNECT)
        elif kind == mqtt.CONNECT:
            return self._refuse(out, PROTOCOL_ERROR, "second CONNECT")
        out.to_broker += p.raw
        return False

    def _connect(self, p: mqtt.Packet, out: Verdict) -> bool:
        connect = mqtt.parse_connect(p)
        self.level, self.client_id = connect.level, connect.client_id
        if len(connect.client_id.encode()) > limits.MAX_CLIENT_ID_BYTES:
            return self._refuse(out, CLIENT_ID_INVALID, f"client id over {limits.MAX_CLIENT_ID_BYTES} bytes",
                                connack=True)
        if self.connects is not None and not self.connects.admit(connect.client_id):
            # AWS counts these (CloudWatch's Connect.ClientIDThrottle) and does not document its answer:
            # MQTT 5's reason code for it, as a broker that says one would (our reading)
            return self._refuse(out, CONNECTION_RATE_EXCEEDED, f"CONNECT within {limits.CONNECT_INTERVAL:g} s of the "
                                "last one with this client id (AWS: 1 a second)", connack=True)
        self.grants = self.grants.knowing({"iot:clientid": connect.client_id})
        if not self.grants.allows("iot:Connect", f"client/{connect.client_id}", _attributes(connect, self.grants)):
            return self._refuse(out, NOT_AUTHORIZED, "iot:Connect not allowed", connack=True)
        if connect.will_topic is not None and not self._will_allowed(connect.will_topic, connect.will_retain):
            return self._refuse(out, NOT_AUTHORIZED, f"will to {connect.will_topic!r} not allowed", connack=True)
        keep_alive = limits.keep_alive(connect.keep_alive)
        self._keep_alive = keep_alive * 1.5  # Mosquitto's wait, as AWS's ("1.5 times the keep-alive period")
        raw = p.raw
        if keep_alive != connect.keep_alive:  # as AWS: 0 or over 1200 s is 1200, under 30 s is 30
            raw = mqtt.with_keep_alive(p, connect, keep_alive)
            self._server_keep_alive = keep_alive if self.v5 else None
        raw = self._session_expiry(connect, raw, out)
        out.to_broker += raw
        out.connected_as = connect.client_id
        return False

    def _session_expiry(self, connect: mqtt.Connect, raw: bytes, out: Verdict) -> bytes:
        """The CONNECT held to the account's session expiry: an MQTT 5 one asking longer gets the
        maximum (the CONNACK will say it); a 3.1.1 persistent session left longer ago than that is
        forgotten before this CONNECT goes on (`out.forget`), since AWS IoT Core ends those too."""
        limit = int(self.sessions.max_expiry)
        away = self.sessions.arrived(connect.client_id)
        if self.sessions.expired(away) and not connect.clean:
            self._note(f"persistent session left over {limit} s ago (the account's session expiry): not resumed")
            out.forget, away = connect.client_id, None
        self._away = None if connect.clean else away
        if not self.v5:
            self._persistent = not connect.clean
            return raw
        self._persistent = connect.session_expiry > 0
        if connect.session_expiry > limit:
            self._expiry_said = limit
            return mqtt.with_connect_properties(raw, {mqtt.SESSION_EXPIRY: limit.to_bytes(4, "big")})
        return raw

    def ended(self, by_broker: bool = False) -> None:
        """The connection ended (`by_broker`: the broker's side first): a persistent session is
        away from now (not when another connection took the client id: the session is that one's);
        its disconnected event says why."""
        self._leave()
        if by_broker and self.clock() - self._heard >= self._keep_alive - 1:  # MQTT 3.1.1: closed unsaid
            self._end(MQTT_KEEP_ALIVE_TIMEOUT)
        if self.presence is not None:
            self.presence.ended(by_broker)

    def _leave(self) -> None:
        """A persistent session is away from now: the record the next connection with its id
        resumes from (its filters, unless not known; what it may receive)."""
        if self._persistent and self.level is not None:
            filters = self.subscriptions.granted if self._filters_known else None
            grants = self.grants  # not the gateway: the record outlives the connection
            self.sessions.left(self.client_id, filters, mqtt311=not self.v5,
                               receives=lambda topic: grants.allows("iot:Receive", f"topic/{topic}"))
        self._persistent = False

    def _end(self, reason: str) -> None:
        if self.presence is not None:
            self.presence.end(reason)

    def _will_allowed(self, topic: str, retain: bool) -> bool:
        """A will is a publish the broker makes for the client later: the keys must allow it now
        (iot:Publish on its topic, and iot:RetainPublish for a retained one: AWS's "Policy to connect
        and publish retained Will messages")."""
        return not over_aws_limits(topic) and self.grants.allows("iot:Publish", f"topic/{topic}") and (
            not retain or self.grants.allows("iot:RetainPublish", f"topic/{topic}"))

    def note_throttled(self) -> None:
        """Log the publishes discarded since the last such line, the client's and those to it (the
        front calls it at the end too)."""
        if self._throttled:
            plural = "es" if self._throttled > 1 else ""
            self._note(f"{self._throttled} publish{plural} over {limits.PUBLISH_RATE}/s discarded (throttled)")
        if self._discarded:
            plural = "s" if self._discarded > 1 else ""
            self._note(f"{self._discarded} message{plural} to the client over {limits.OUTBOUND_RATE}/s "
                       "discarded (outbound throttle)")
        self._throttled, self._discarded, self._throttle_noted = 0, 0, self.clock()

    def taken_over(self) -> bytes:
        """What AWS IoT Core sends a connection whose client id another connection took: MQTT 5's
        DISCONNECT 0x8E (session taken over); MQTT 3.1.1 gets nothing, just the close."""
        self._note("another connection took this client id: connection closed")
        self._end(DUPLICATE_CLIENTID)
        self.closed = True
        self._leave()  # the newer connection takes the session, and its record
        return mqtt.disconnect(SESSION_TAKEN_OVER) if self.v5 else b""

    def _publish(self, p: mqtt.Packet, out: Verdict) -> bool:  # noqa: PLR0911 - a return per AWS rule, in order
        if not self._publishes.take():  # AWS IoT Core discards it and sends nothing back
            self._throttled += 1
            if self.clock() - self._throttle_noted >= 1:  # one line a second, however fast the flood
                self.note_throttled()
            return False
        publish = mqtt.parse_publish(p, self.v5)
        if publish.alias is not None and not 0 < publish.alias <= TOPIC_ALIAS_MAXIMUM:
            return self._refuse(out, TOPIC_ALIAS_INVALID, f"topic alias {publish.alias} (the CONNACK said at most "
                                f"{TOPIC_ALIAS_MAXIMUM})")
        topic = _resolve(self._aliases, publish)
        if publish.qos > 1:  # AWS IoT Core supports QoS 0 and 1 only
            return self._refuse(out, QOS_NOT_SUPPORTED, "publish with QoS 2")
        if publish.payload_size > limits.MAX_PAYLOAD_BYTES:
            return self._refuse(out, PACKET_TOO_LARGE, f"payload of {publish.payload_size} bytes")
        if publish.user_properties_size > limits.MAX_USER_PROPERTIES_BYTES:
            return self._refuse(out, PACKET_TOO_LARGE, f"user properties of {publish.user_properties_size} bytes")
        if not topic or over_aws_limits(topic):
            return self._refuse_publish(publish, out, TOPIC_NAME_INVALID, f"topic {topic!r} over AWS IoT Core's limits")
        reserved = reserved_refusal(topic, PUBLISH)
        if reserved:  # "can result in a terminated connection": it does here, MQTT 5 QoS 1 too
            return self._refuse(out, TOPIC_NAME_INVALID, f"publish to {topic!r}: {reserved}")
        if not self.grants.allows("iot:Publish", f"topic/{topic}"):
            return self._refuse_publish(publish, out, NOT_AUTHORIZED, f"iot:Publish to {topic!r} not allowed")
        if publish.retain and not self.grants.allows("iot:RetainPublish", f"topic/{topic}"):
            return self._refuse_publish(publish, out, NOT_AUTHORIZED, f"iot:RetainPublish to {topic!r} not allowed")
        if publish.qos:
            self.sessions.published(topic)  # stored for the sessions away it matches
        out.to_broker += p.raw
        return False

    def _refuse_publish(self, publish: mqtt.Publish, out: Verdict, code: int, why: str) -> bool:
        """MQTT 5 QoS 1: a PUBACK with the reason, the connection stays; otherwise the connection ends."""
        if self.v5 and publish.packet_id is not None:
            self._note(f"{why}: PUBACK 0x{code:02X}")
            out.to_client += mqtt.puback(publish.packet_id, code, True)
            return False
        return self._refuse(out, code, why)

    def _subscribe(self, p: mqtt.Packet, out: Verdict) -> bool:
        request = mqtt.parse_subscribe(p, self.v5)
        ends = self._subscribe_as_a_whole(p, request, out)
        if ends is not None:
            return ends
        codes: list[int | None] = []
        forward: list[tuple[str, int]] = []
        for topic_filter, options in request.entries:
            if over_aws_limits(topic_filter):
                code: int | None = TOPIC_FILTER_INVALID
            elif not self.grants.allows("iot:Subscribe", f"topicfilter/{topic_filter}"):
                code = NOT_AUTHORIZED
            elif self.subscriptions.full(topic_filter):
                code = QUOTA_EXCEEDED
            else:
                code = None
                forward.append((topic_filter, options))
                self.subscriptions.ask(topic_filter)  # counted now; forgotten again if the broker refuses it
            if code is not None:
                self._note(f"subscription to {topic_filter!r} refused (0x{code:02X})")
                code = code if self.v5 else FAILURE
            codes.append(code)
        if forward:
            self.subscriptions.forwarded(request.packet_id, codes, [f for f, _ in forward])
            out.to_broker += mqtt.subscribe(request.packet_id, request.properties, forward)
        else:
            out.to_client += mqtt.suback(request.packet_id, [c or 0 for c in codes], self.v5)
        return False

    def _subscribe_as_a_whole(self, p: mqtt.Packet, request: mqtt.Subscribe, out: Verdict) -> bool | None:
        """What AWS does to a SUBSCRIBE as a whole: refused (True: the connection ends), left
        unanswered (False), or None: each filter is decided on its own."""
        if self.v5 and mqtt.SUBSCRIPTION_IDENTIFIER in mqtt.subscribe_properties(p):  # the CONNACK said 0
            return self._refuse(out, SUBSCRIPTION_IDS_NOT_SUPPORTED, "SUBSCRIBE with a subscription identifier")
        if len(request.entries) > limits.MAX_FILTERS_PER_SUBSCRIBE:
            return self._refuse(out, QUOTA_EXCEEDED, f"{len(request.entries)} filters in one SUBSCRIBE "
                                f"(AWS IoT Core takes {limits.MAX_FILTERS_PER_SUBSCRIBE})")
        if any(options & 0x03 == 2 for _, options in request.entries):
            # "When QoS level 2 is requested, the message broker doesn't send a PUBACK or SUBACK"
            self._note(f"SUBSCRIBE {request.packet_id} asks QoS 2: not answered (AWS IoT Core sends no SUBACK)")
            return False
        for topic_filter, _ in request.entries:
            reserved = reserved_refusal(topic_filter, SUBSCRIBE)
            if reserved:
                return self._refuse(out, TOPIC_FILTER_INVALID, f"subscription to {topic_filter!r}: {reserved}")
        return None

    def from_broker(self, data: bytes) -> Verdict:
        """Bytes from Mosquitto: what reaches the client, and PUBACKs for what the client may not receive."""
        out = Verdict()
        if self.closed or self._outlived(out):
            return out
        for p in self._from_broker.feed(data):
            kind = p.kind
            if kind == mqtt.PUBLISH:
                self._deliver(p, out)
            elif kind == mqtt.SUBACK:
                out.to_client += self._suback(p)
            elif kind == mqtt.CONNACK and mqtt.connack_code(p) == 0:
                out.to_client += self._connack(p)
            elif kind == mqtt.DISCONNECT:  # MQTT 5: the broker says why (0x8D: keep-alive timeout)
                self._end(MQTT_KEEP_ALIVE_TIMEOUT if p.raw[p.body:p.body + 1] == b"\x8d" else
                          SERVER_INITIATED_DISCONNECT)
                out.to_client += p.raw
            else:
                out.to_client += p.raw
        out.pause = self.outbound.sent(len(out.to_client), out.pause)
        return out

    def _deliver(self, p: mqtt.Packet, out: Verdict) -> None:
        """Pass a message on if the keys may receive it; a retained one only to an exact subscription,
        as AWS IoT Core delivers retained messages only to a filter equal to their topic; and at
        AWS's pace (local/outbound.py): one it discards, QoS 1 too, the broker is told was delivered."""
        publish = mqtt.parse_publish(p, self.v5)
        topic = _resolve(self._broker_aliases, publish)
        allowed = self._receive.get(topic)
        if allowed is None:
            if len(self._receive) >= RECEIVE_CACHE:
                self._receive.clear()
            allowed = self._receive[topic] = self.grants.allows("iot:Receive", f"topic/{topic}")
        deliver = allowed and (not publish.retain or topic in self.subscriptions) and not (
            not self.resumed and self.subscriptions.parent_only(topic))  # a resumed session's filters are not all known
        if deliver:
            action, pause = self.outbound.admit(publish.packet_id is not None)
            if action != DISCARD:
                out.pause = max(out.pause, pause)
                out.to_client += p.raw
                return
        if publish.packet_id is not None:
            out.to_broker += mqtt.puback(publish.packet_id)  # the broker may forget it: it is not for this client
        if not allowed:
            self._note(f"message on {topic!r} not delivered: iot:Receive not allowed")
        elif deliver:  # over the outbound throttle: AWS IoT Core discards it, and tells no one
            self._discarded += 1
            if self.clock() - self._throttle_noted >= 1:  # one line a second, however fast the flood
                self.note_throttled()

    def _connack(self, p: mqtt.Packet) -> bytes:
        """The broker's accepting CONNACK as AWS IoT Core's would be (MQTT 5: ANNOUNCED, and the
        keep-alive and session expiry the gateway made of the client's); whether it resumed a
        session is noted, and its stored messages are then sent at AWS's replay rate."""
        self.resumed = bool(p.raw[p.body] & 1)
        away = (self._away or self.sessions.arrived(self.client_id)) if self.resumed else None  # or a takeover's
        self._filters_known = not self.resumed or (away is not None and away.filters is not None)
        if away is not None and away.filters is not None:  # a resumed session's filters stay, and count
            self.subscriptions.granted = dict(away.filters)
            self.subscriptions.asked = set(away.filters)
        if self.resumed:
            stored = away.stored if away is not None else None
            self.outbound.resumed(stored)
            if stored:
                self._note(f"session resumed: {stored} stored message{'s' * (stored > 1)} sent at "
                           f"{limits.REPLAY_RATE} a second")
        self._replay_quiet_from = self.clock()
        if self.presence is not None:
            self.presence.connected(self.client_id)
        if not self.v5:
            return p.raw
        said = {} if self._server_keep_alive is None else {
            mqtt.SERVER_KEEP_ALIVE: self._server_keep_alive.to_bytes(2, "big")}
        if self._expiry_said is not None:  # "the server uses a different value than the client"
            said[mqtt.SESSION_EXPIRY] = self._expiry_said.to_bytes(4, "big")
        return mqtt.with_connack_properties(p, {**ANNOUNCED, **said})

    def _suback(self, p: mqtt.Packet) -> bytes:
        """The broker's SUBACK with our refusals put back in their places."""
        suback = mqtt.parse_suback(p, self.v5)
        answered = self.subscriptions.answered(suback)
        if answered is None:
            return p.raw
        codes, granted = answered
        if self.presence is not None:
            self.presence.subscribed(granted)
        return mqtt.suback(suback.packet_id, codes, self.v5)


def _attributes(connect: mqtt.Connect, grants: Grants) -> dict[str, str | list[str]]:
    """What AWS IoT Core's iot:Connect conditions see of a CONNECT (Developer Guide, "Connect
    policy examples"): iot:ConnectAttributes (PersistentConnect, LastWill) and iot:LastWillTopic."""
    persistent = not connect.clean if connect.level != 5 else connect.session_expiry > 0 or not connect.clean
    return {"iot:connectattributes": ["PersistentConnect"] * persistent + ["LastWill"] * (connect.will_topic is not None),
            "iot:lastwilltopic": [] if connect.will_topic is None else [
                iot_arn(grants.region, grants.account, f"topic/{connect.will_topic}")]}


def _resolve(aliases: dict[int, str], publish: mqtt.Publish) -> str:
    """The topic of a PUBLISH that may set or use an MQTT 5 topic alias ('' for an unknown alias)."""
    if publish.alias is None:
        return publish.topic
    if publish.topic:
        aliases[publish.alias] = publish.topic
        return publish.topic
    return aliases.get(publish.alias, "")
