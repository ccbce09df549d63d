"""The local gateway's decisions, packet by packet (bytes in, bytes out, a clock of the test's own):
the tests against the running stack (test_aws_rules.py) show the same through real clients."""

import json
import struct

import pytest

from iotnotify.local import packets as mqtt
from iotnotify.local.account import ConnectRate, StoredSessions
from iotnotify.local.gateway import Gateway
from iotnotify.local.grants import Grants
from iotnotify.local.lifecycle import Lifecycle, Presence
from iotnotify.server.policy import role_policy, session_policy

REGION, ACCOUNT, CLIENT = "local", "000000000000", "iotnotify-0123456789abcdef"


def text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def connect(client_id: str = CLIENT + "-1", level: int = 5, keep_alive: int = 60) -> bytes:
    body = text("MQTT") + bytes([level, 0x02]) + struct.pack("!H", keep_alive)
    return mqtt.packet(0x10, body + (b"\x00" if level == 5 else b"") + text(client_id))


def publish(topic: str, payload: bytes = b"x", qos: int = 1, retain: bool = False, packet_id: int = 1,
            level: int = 5, alias: int | None = None) -> bytes:
    props = b"" if level != 5 else (b"\x03\x23" + struct.pack("!H", alias) if alias else b"\x00")
    body = text(topic) + (struct.pack("!H", packet_id) if qos else b"") + props + payload
    return mqtt.packet(0x30 | qos << 1 | int(retain), body)


def subscribe(*filters: str, packet_id: int = 7, level: int = 5) -> bytes:
    return mqtt.subscribe(packet_id, b"\x00" if level == 5 else b"", [(f, 1) for f in filters])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gateway(topics=("test/*",), level: int = 5, clock=None, role=None, log=None) -> Gateway:
    policies = (role or role_policy(REGION, ACCOUNT), session_policy(REGION, ACCOUNT, CLIENT, list(topics)))
    g = Gateway(Grants(REGION, ACCOUNT, policies), log, clock or Clock())
    verdict = g.from_client(connect(level=level))
    assert verdict.to_broker and not verdict.close
    return g


def packets_of(data: bytes) -> list[mqtt.Packet]:
    return mqtt.Framer().feed(data)


def test_packets_split_anywhere_are_framed_whole():
    data = connect() + publish("test/a", b"p" * 300) + subscribe("test/#")
    framer = mqtt.Framer()
    seen = [p for i in range(len(data)) for p in framer.feed(data[i:i + 1])]
    assert [p.kind for p in seen] == [mqtt.CONNECT, mqtt.PUBLISH, mqtt.SUBSCRIBE]
    assert b"".join(p.raw for p in seen) == data


@pytest.mark.parametrize("level", [4, 5])
def test_a_client_id_the_keys_do_not_allow_is_refused(level):
    g = Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT),
                                         session_policy(REGION, ACCOUNT, CLIENT, ["test/*"]))), None, Clock())
    verdict = g.from_client(connect("someone-else", level))
    assert verdict.close and verdict.to_broker == b""
    # MQTT 5: CONNACK 0x87; MQTT 3.1.1: AWS IoT Core just closes the connection
    assert verdict.to_client == (mqtt.connack(0x87, True) if level == 5 else b"")


def connect_with_will(will_topic: str, retain: bool = False, level: int = 5) -> bytes:
    flags = 0x02 | 0x04 | (0x20 if retain else 0)
    body = text("MQTT") + bytes([level, flags]) + struct.pack("!H", 60) + (b"\x00" if level == 5 else b"")
    body += text(CLIENT + "-1") + (b"\x00" if level == 5 else b"") + text(will_topic) + text("gone")
    return mqtt.packet(0x10, body)


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("will, retain, allowed", [("test/will", False, True), ("test/will", True, True),
                                                   ("other/will", False, False)])
def test_a_will_needs_publish_on_its_topic(level, will, retain, allowed):
    g = Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT),
                                         session_policy(REGION, ACCOUNT, CLIENT, ["test/*"]))), None, Clock())
    verdict = g.from_client(connect_with_will(will, retain, level))
    if allowed:
        assert verdict.to_broker and not verdict.close
    else:
        assert verdict.close and verdict.to_broker == b""
        assert verdict.to_client == (mqtt.connack(0x87, True) if level == 5 else b"")


def test_allowed_publish_goes_to_the_broker_unchanged():
    g = gateway()
    data = publish("test/a") + publish("test/b", qos=0)
    assert g.from_client(data).to_broker == data


def test_mqtt5_refused_qos1_publish_gets_puback_87_and_the_connection_stays():
    g = gateway()
    verdict = g.from_client(publish("other/x", packet_id=9) + publish("test/ok", packet_id=10))
    assert verdict.to_client == mqtt.puback(9, 0x87, True)
    assert verdict.to_broker == publish("test/ok", packet_id=10) and not verdict.close


def test_mqtt5_refused_qos0_publish_ends_the_connection_with_disconnect_87():
    verdict = gateway().from_client(publish("other/x", qos=0))
    assert verdict.to_client == mqtt.disconnect(0x87) and verdict.close


def test_mqtt311_refused_publish_closes_the_connection():
    verdict = gateway(level=4).from_client(publish("other/x", level=4))
    assert verdict.close and verdict.to_client == b"" and verdict.to_broker == b""


def test_retained_publish_needs_retain_publish_too():
    role = {"Statement": [{"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish", "iot:Subscribe",
                                                          "iot:Receive"], "Resource": "*"}]}
    g = gateway(role=role)
    assert g.from_client(publish("test/a", retain=True, packet_id=3)).to_client == mqtt.puback(3, 0x87, True)
    assert g.from_client(publish("test/a", packet_id=4)).to_broker == publish("test/a", packet_id=4)
    assert gateway().from_client(publish("test/a", retain=True)).to_broker == publish("test/a", retain=True)


def test_a_topic_alias_is_remembered_for_later_publishes():
    g = gateway()
    assert g.from_client(publish("test/a", alias=1)).to_broker
    assert g.from_client(publish("", alias=1, packet_id=2)).to_broker  # test/a again, by alias
    assert g.from_client(publish("other/x", alias=2, packet_id=3)).to_client == mqtt.puback(3, 0x87, True)
    assert g.from_client(publish("", alias=2, packet_id=4)).to_client == mqtt.puback(4, 0x87, True)


@pytest.mark.parametrize("topic", ["test/" + "a/" * 7 + "b", "test/" + "x" * 260])
def test_topics_over_aws_limits_are_refused(topic):
    assert gateway().from_client(publish(topic, packet_id=5)).to_client == mqtt.puback(5, 0x90, True)
    assert gateway(level=4).from_client(publish(topic, level=4)).close


def test_payload_over_128_kb_ends_the_connection():
    g = gateway()
    assert g.from_client(publish("test/a", b"x" * (128 * 1024))).to_broker  # exactly the limit
    verdict = g.from_client(publish("test/a", b"x" * (128 * 1024 + 1)))
    assert verdict.close and verdict.to_client == mqtt.disconnect(0x95)


def user_properties(*pairs: tuple[str, str]) -> bytes:
    """The properties of a PUBLISH with these user properties."""
    body = b"".join(b"\x26" + text(key) + text(value) for key, value in pairs)
    return mqtt.encode_varint(len(body)) + body


@pytest.mark.parametrize("size, allowed", [(8192, True), (8193, False)])
def test_user_properties_over_8_kb_end_the_connection(size, allowed):
    g = gateway()
    data = mqtt.packet(0x32, text("test/a") + struct.pack("!H", 1)
                       + user_properties(("a", "b" * 4000), ("c", "d" * (size - 4002))) + b"x")
    verdict = g.from_client(data)
    if allowed:
        assert verdict.to_broker == data and not verdict.close
    else:
        assert verdict.close and verdict.to_broker == b"" and verdict.to_client == mqtt.disconnect(0x95)


def test_a_huge_packet_is_refused_from_its_header_before_its_body_arrives():
    g = gateway()
    header = bytes([0x32]) + mqtt.encode_varint(50_000_000)
    verdict = g.from_client(header + b"\x00" * 10)
    assert verdict.close and verdict.to_client == mqtt.disconnect(0x95)


def test_over_100_publishes_a_second_are_discarded_silently():
    clock, lines = Clock(), []
    g = gateway(clock=clock, log=lines.append)
    passed = sum(bool(g.from_client(publish("test/a", packet_id=i)).to_broker) for i in range(1, 151))
    assert passed == 100  # a full bucket: 100 at once
    clock.now += 0.5
    passed = sum(bool(g.from_client(publish("test/a", packet_id=i)).to_broker) for i in range(1, 101))
    assert passed == 50  # then 100 a second
    g.note_throttled()  # as the front does when the connection ends
    noted = [int(line.split(": ")[-1].split()[0]) for line in lines if "discarded (throttled)" in line]
    assert sum(noted) == 50 + 50 and len(noted) == 2  # one line at once, then at most one a second


def test_subscribe_refusals_are_merged_into_the_brokers_suback():
    g = gateway()
    verdict = g.from_client(subscribe("test/#", "other/#", "test/a", packet_id=7))
    assert packets_of(verdict.to_broker)[0].raw == subscribe("test/#", "test/a", packet_id=7)  # only the allowed
    answer = g.from_broker(mqtt.suback(7, [1, 1], True))
    assert mqtt.parse_suback(packets_of(answer.to_client)[0], True).codes == [1, 0x87, 1]


def test_mqtt311_subscribe_refusal_is_0x80():
    g = gateway(level=4)
    verdict = g.from_client(subscribe("other/#", packet_id=3, level=4))
    assert verdict.to_broker == b"" and verdict.to_client == mqtt.suback(3, [0x80], False)


def test_nine_filters_in_one_subscribe_end_the_connection():
    verdict = gateway().from_client(subscribe(*(f"test/{i}" for i in range(9))))
    assert verdict.close and verdict.to_client == mqtt.disconnect(0x97)


def test_the_51st_subscription_is_refused():
    g = gateway()
    for batch in range(1, 8):  # 7 SUBSCRIBEs of 8 filters: 56
        verdict = g.from_client(subscribe(*(f"test/{batch}/{i}" for i in range(8)), packet_id=batch))
        forwarded = mqtt.parse_subscribe(packets_of(verdict.to_broker)[0], True).entries
        answer = g.from_broker(mqtt.suback(batch, [1] * len(forwarded), True)).to_client
        codes = mqtt.parse_suback(packets_of(answer)[0], True).codes
        assert codes == ([1] * 8 if batch < 7 else [1, 1] + [0x97] * 6)  # 48 + 2 = 50, then quota exceeded
    assert len(g.subscriptions) == 50


def test_messages_the_keys_may_not_receive_are_dropped_and_acknowledged_to_the_broker():
    role = {"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                          {"Effect": "Deny", "Action": "iot:Receive", "Resource": "*:topic/test/secret/*"}]}
    g = gateway(role=role)
    shown, hidden = publish("test/open", packet_id=11), publish("test/secret/x", packet_id=12)
    verdict = g.from_broker(shown + hidden)
    assert verdict.to_client == shown and verdict.to_broker == mqtt.puback(12)


def test_over_100_messages_a_second_to_a_client_are_discarded_and_acknowledged_to_the_broker():
    """AWS's rate holds for what it sends to a client too: 100 at once, then 100 a second; the rest is
    discarded without a word to the client (QoS 1's PUBACK goes to the broker: it is done with them)."""
    clock, lines = Clock(), []
    g = gateway(clock=clock, log=lines.append)
    delivered = [g.from_broker(publish("test/a", packet_id=i, qos=1 if i % 2 else 0)) for i in range(1, 151)]
    assert sum(bool(v.to_client) for v in delivered) == 100
    assert [v.to_broker for v in delivered[100:]] == [mqtt.puback(i) if i % 2 else b"" for i in range(101, 151)]
    clock.now += 0.5
    assert sum(bool(g.from_broker(publish("test/a", packet_id=i)).to_client) for i in range(1, 101)) == 50
    g.note_throttled()
    noted = [int(line.split(": ")[-1].split()[0]) for line in lines if "discarded (outbound throttle)" in line]
    assert sum(noted) == 50 + 50 and len(noted) == 2


def test_a_resumed_session_without_a_record_has_its_qos1_messages_held_not_discarded():
    """A session the stack has no record of (resumed after a restart of the stack): how many it
    stored is not known, so none is paced at the replay rate; its QoS 1 messages over the outbound
    rate are delayed, never discarded (a stored one must not be lost), its QoS 0 ones are.
    Its filters are not all known: X/# does not hide X then."""
    clock = Clock()
    g = gateway(clock=clock)
    g.from_broker(mqtt.packet(0x20, b"\x01\x00\x00"))  # session present
    verdicts = [g.from_broker(publish("test/a", packet_id=i)) for i in range(1, 151)]
    assert all(v.to_client for v in verdicts) and not any(v.to_broker for v in verdicts)
    assert verdicts[99].pause == 0 and verdicts[149].pause > 0.4
    assert g.from_broker(publish("test/a", qos=0)).to_client == b""  # over the rate: discarded
    g.from_client(subscribe("test/a/#", packet_id=1))
    g.from_broker(mqtt.suback(1, [1], True))
    clock.now += 10
    assert g.from_broker(publish("test/a", packet_id=200)).to_client  # maybe a resumed filter's


def connect_v5(client_id: str = CLIENT + "-1", expiry: int | None = None, clean: bool = True) -> bytes:
    props = b"" if expiry is None else bytes([mqtt.SESSION_EXPIRY]) + struct.pack("!I", expiry)
    body = text("MQTT") + bytes([5, 0x02 if clean else 0]) + struct.pack("!H", 60)
    return mqtt.packet(0x10, body + mqtt.encode_varint(len(props)) + props + text(client_id))


def session_gateway(clock, sessions, log=None) -> Gateway:
    policies = (role_policy(REGION, ACCOUNT), session_policy(REGION, ACCOUNT, CLIENT, ["test/*"]))
    return Gateway(Grants(REGION, ACCOUNT, policies), log, clock, sessions=sessions)


@pytest.mark.parametrize("asked, kept", [(7200, 3600), (0xFFFFFFFF, 3600), (600, None), (None, None)])
def test_an_mqtt5_session_expiry_over_the_accounts_maximum_is_made_it_and_the_connack_says_so(asked, kept):
    """AWS holds a session to the account's maximum (an hour by default) and, as MQTT 5 has a server
    do, says the value it uses in the CONNACK; one within it passes unchanged, and is not said."""
    g = session_gateway(Clock(), StoredSessions(3600))
    sent = packets_of(g.from_client(connect_v5(expiry=asked)).to_broker)[0]
    assert mqtt.parse_connect(sent).session_expiry == (kept if kept is not None else asked or 0)
    assert mqtt.parse_connect(sent).client_id == CLIENT + "-1"
    connack = packets_of(g.from_broker(mqtt.packet(0x20, b"\x00\x00\x00")).to_client)[0]
    properties = mqtt._properties(connack.raw, connack.body + 2)[0]
    assert properties.get(mqtt.SESSION_EXPIRY) == kept


def test_an_mqtt311_persistent_session_left_longer_than_the_maximum_is_forgotten_before_the_next_connect():
    """Mosquitto keeps a 3.1.1 persistent session for ever (but for whole hours of
    persistent_client_expiration); AWS ends it after the account's session expiry. The gateway
    remembers when one was left, and has the broker forget it before a CONNECT after that."""
    clock = Clock()
    sessions, lines = StoredSessions(60, clock), []

    def session(client_id=CLIENT + "-1", clean=False, level=4):
        g = session_gateway(clock, sessions, lines.append)
        body = text("MQTT") + bytes([level, 0x02 if clean else 0]) + struct.pack("!H", 60)
        return g, g.from_client(mqtt.packet(0x10, body + (b"\x00" if level == 5 else b"") + text(client_id)))

    g, first = session()
    assert first.forget is None and first.to_broker
    g.ended()
    clock.now += 59
    g, within = session()
    assert within.forget is None  # resumed as it is
    g.ended()
    clock.now += 61
    g, after = session()
    assert after.forget == CLIENT + "-1" and after.to_broker  # forgotten, then this CONNECT goes on
    assert "persistent session left over 60 s ago" in lines[-1]
    taken, _ = session()
    g.taken_over()
    g.ended()  # the session is the newer connection's: its expiry does not start now
    taken.from_broker(mqtt.packet(0x20, b"\x01\x00"))  # the newer one's CONNACK takes the record over
    clock.now += 61
    assert session()[1].forget is None
    taken.ended()
    clock.now += 61
    assert session(clean=True)[1].forget is None  # a clean session has nothing to forget


def test_stored_sessions_remember_a_bounded_number_of_ids():
    sessions = StoredSessions(1, Clock())
    sessions.LIMIT = 3
    for i in range(5):
        sessions.left(f"c{i}", {}, mqtt311=True)
    assert list(sessions._away) == ["c2", "c3", "c4"]


def test_only_what_was_stored_while_away_comes_at_10_a_second():
    """The stack counts the QoS 1 messages published to an away session's QoS 1 filters; once it
    is back, that many are paced at AWS's replay rate and what follows is live, whatever the
    traffic (a steady stream would otherwise never leave the replay)."""
    clock = Clock()
    sessions = StoredSessions(3600, clock)
    g = session_gateway(clock, sessions)
    g.from_client(connect_v5(expiry=3600))
    g.from_broker(mqtt.packet(0x20, b"\x00\x00\x00"))
    g.from_client(subscribe("test/a", "test/q0", packet_id=1))
    g.from_broker(mqtt.suback(1, [1, 0], True))
    g.ended()
    publisher = session_gateway(clock, sessions)
    publisher.from_client(connect_v5(CLIENT + "-2"))
    for i in range(1, 21):
        publisher.from_client(publish("test/a", packet_id=i) + publish("test/q0", packet_id=100 + i)
                              + publish("test/a", qos=0))
    assert sessions._away[CLIENT + "-1"].stored == 20  # QoS 1 on its QoS 1 filter only
    back = session_gateway(clock, sessions)
    back.from_client(connect_v5(expiry=3600, clean=False))
    back.from_broker(mqtt.packet(0x20, b"\x01\x00\x00"))  # session present
    stored = [back.from_broker(publish("test/a", packet_id=i)) for i in range(1, 21)]
    assert stored[19].pause == pytest.approx(1.1)  # 10 at once, then 10 a second
    live = [back.from_broker(publish("test/a", packet_id=i)) for i in range(21, 41)]
    assert all(v.to_client and v.pause == 0 for v in live)
    # what queued behind them comes in a burst AWS would not have made: delayed, not discarded
    queued = [back.from_broker(publish("test/a", packet_id=i)) for i in range(41, 191)]
    assert all(v.to_client for v in queued) and queued[-1].pause > 0 and not any(v.to_broker for v in queued)
    back.ended()
    assert sessions._away[CLIENT + "-1"].filters == {"test/a": 1, "test/q0": 0}  # kept through the resume


def test_a_subscribe_asking_qos_2_gets_no_suback():
    """"When QoS level 2 is requested, the message broker doesn't send a PUBACK or SUBACK" (the
    developer guide's MQTT page): nothing is subscribed, nothing answered, the connection stays."""
    lines = []
    g = gateway(log=lines.append)
    asked = mqtt.subscribe(7, b"\x00", [("test/a", 1), ("test/b", 2)])
    verdict = g.from_client(asked)
    assert (verdict.to_broker, verdict.to_client, verdict.close) == (b"", b"", False)
    assert "SUBSCRIBE 7 asks QoS 2: not answered (AWS IoT Core sends no SUBACK)" in lines[-1]
    assert g.from_client(subscribe("test/a", packet_id=8)).to_broker  # the connection goes on


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("packet, allowed", [
    (lambda level: publish("$aws/rules/store/x", level=level), True),  # Basic Ingest: publish only
    (lambda level: publish("$aws/events/presence/connected/c", level=level), False),  # subscribe only
    (lambda level: publish("$custom/x", level=level), False),  # not AWS's: reserved all the same
    (lambda level: subscribe("$aws/rules/store/#", level=level), False),
    (lambda level: subscribe("$share/g/$aws/rules/store/#", level=level), False),
    (lambda level: subscribe("$SYS/#", level=level), False),
])
def test_reserved_topics_are_used_only_as_aws_lists_them(level, packet, allowed):
    """"Unsupported publish or subscribe operations to reserved topics can result in a terminated
    connection" (Developer Guide, "Reserved topics"): they do here, before the policy is asked
    (which allows all of $ here: the test is of the reserved list alone)."""
    role = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
    g = Gateway(Grants(REGION, ACCOUNT, (role,)), None, Clock())
    g.from_client(connect(level=level))
    verdict = g.from_client(packet(level))
    assert bool(verdict.to_broker) == allowed and verdict.close == (not allowed)
    if not allowed:
        assert verdict.to_client == (mqtt.disconnect(0x90 if packet(level)[0] >> 4 == mqtt.PUBLISH else 0x8F)
                                     if level == 5 else b"")


def test_over_512_kib_a_second_to_a_client_is_delayed_not_discarded():
    clock = Clock()
    g = gateway(clock=clock)
    big = publish("test/a", payload=b"x" * 120_000, packet_id=1)
    verdicts = [g.from_broker(big) for _ in range(5)]  # 600 KB at once
    assert all(v.to_client == big for v in verdicts)
    assert verdicts[3].pause == 0 and 0 < verdicts[4].pause <= 0.2  # the broker is read again once the rate allows


def test_a_connection_older_than_its_limit_ends_at_its_next_message_either_way():
    """AWS closes a WebSocket connection after 24 hours, "when an attempt is made to send a message
    by the client or server": nothing passes then, and nothing is said (MQTT 5 too)."""
    clock, lines = Clock(), []
    for side in ("client", "broker"):
        g = Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT), session_policy(REGION, ACCOUNT, CLIENT,
                                                                                         ["test/*"]))),
                    lines.append, clock, max_duration=10)
        g.from_client(connect())
        clock.now += 9.9
        assert g.from_client(publish("test/a")).to_broker and g.from_broker(publish("test/b")).to_client
        clock.now += 0.1
        verdict = g.from_client(publish("test/a")) if side == "client" else g.from_broker(publish("test/b"))
        assert (verdict.close, verdict.to_broker, verdict.to_client) == (True, b"", b"")
        assert g.from_client(publish("test/a")).to_broker == b""  # and nothing more, either way
    assert sum("connected longer than 10 s" in line for line in lines) == 2


def test_one_connect_a_second_per_client_id():
    """AWS IoT Core's "Connect requests per second per client ID": 1. A second CONNECT with the same
    id within the second is refused (MQTT 5: CONNACK 0x9F, 3.1.1: closed), whoever sends it; another
    id is not held back; a refused one does not count."""
    clock, lines = Clock(), []
    rate = ConnectRate(clock)
    policies = (role_policy(REGION, ACCOUNT), session_policy(REGION, ACCOUNT, CLIENT, ["test/*"]))

    def attempt(client_id: str, level: int = 5):  # a new connection, as the stack makes one per upgrade
        return Gateway(Grants(REGION, ACCOUNT, policies), lines.append, clock, connects=rate).from_client(
            connect(client_id, level))

    assert attempt(CLIENT + "-1").to_broker
    refused = attempt(CLIENT + "-1")
    assert (refused.close, refused.to_client, refused.to_broker) == (True, mqtt.connack(0x9F, True), b"")
    assert attempt(CLIENT + "-2").to_broker  # another id
    clock.now += 0.6
    closed = attempt(CLIENT + "-1", level=4)
    assert (closed.close, closed.to_client, closed.to_broker) == (True, b"", b"")  # 3.1.1: closed, nothing said
    clock.now += 0.4  # a second after the accepted one
    assert attempt(CLIENT + "-1").to_broker
    assert sum("CONNECT within 1 s" in line for line in lines) == 2


def test_the_connect_rate_forgets_ids_of_the_past_second_only_when_it_must():
    clock = Clock()
    rate = ConnectRate(clock)
    rate.RECENT_IDS = 3
    assert all(rate.admit(f"c{i}") for i in range(3))
    clock.now += 1.5
    assert rate.admit("c3") and len(rate._last) == 1  # the three older than a second let go
    assert not rate.admit("c3")


def test_retained_messages_reach_exact_subscriptions_only():
    g = gateway()
    g.from_client(subscribe("test/#", packet_id=1))
    g.from_broker(mqtt.suback(1, [1], True))
    retained = publish("test/config", retain=True, packet_id=21)
    assert g.from_broker(retained).to_client == b""  # AWS: not for a wildcard filter
    g.from_client(subscribe("test/config", packet_id=2))
    g.from_broker(mqtt.suback(2, [1], True))
    assert g.from_broker(retained).to_client == retained
    live = publish("test/other", packet_id=22)
    assert g.from_broker(live).to_client == live


@pytest.mark.parametrize("asked, used", [(60, 60), (10, 30), (0, 1200), (3600, 1200), (1200, 1200), (30, 30)])
def test_keep_alive_is_clamped_to_30_1200_and_mqtt5_is_told(asked, used):
    g = Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT),
                                         session_policy(REGION, ACCOUNT, CLIENT, ["test/*"]))), None, Clock())
    forwarded = packets_of(g.from_client(connect(keep_alive=asked)).to_broker)[0]
    assert mqtt.parse_connect(forwarded).keep_alive == used
    connack = packets_of(g.from_broker(mqtt.packet(0x20, b"\x00\x00\x00")).to_client)[0]
    announced = mqtt._properties(connack.raw, connack.body + 2)[0]
    assert announced.get(mqtt.SERVER_KEEP_ALIVE) == (None if asked == used else used)


def test_the_connack_says_what_aws_iot_core_says_of_itself_and_keeps_the_rest():
    """MQTT 5: Maximum QoS 1, Retain, Wildcard and Shared Subscription Available, no Subscription
    Identifiers, Topic Alias Maximum 8, in place of Mosquitto's own; its Receive Maximum kept."""
    g = gateway()
    props = bytes([0x22, 0, 10, 0x21, 0, 20, 0x2A, 0, 0x29, 1])  # alias maximum 10, receive maximum 20, ...
    mosquitto = mqtt.packet(0x20, b"\x00\x00" + bytes([len(props)]) + props)
    connack = packets_of(g.from_broker(mosquitto).to_client)[0]
    announced = mqtt._properties(connack.raw, connack.body + 2)[0]
    assert announced == {0x24: 1, 0x25: 1, 0x28: 1, 0x29: 0, 0x2A: 1, 0x22: 8, 0x21: 20}


def test_a_subscription_identifier_or_a_topic_alias_over_8_ends_the_connection():
    g = gateway()
    with_id = mqtt.packet(0x82, struct.pack("!H", 7) + bytes([2, 0x0B, 5]) + text("test/a") + b"\x01")
    assert g.from_client(with_id).to_client == mqtt.disconnect(0xA1)
    g = gateway()
    aliased = mqtt.packet(0x32, text("test/a") + struct.pack("!H", 1) + bytes([3, 0x23, 0, 9]) + b"x")
    assert g.from_client(aliased).to_client == mqtt.disconnect(0x94)


def test_a_filter_ending_in_hash_does_not_get_its_parent_topic_as_on_aws():
    g = gateway()
    g.from_client(subscribe("test/a/#", packet_id=1))
    g.from_broker(mqtt.suback(1, [1], True))
    parent, child = publish("test/a", packet_id=31), publish("test/a/b", packet_id=32)
    dropped = g.from_broker(parent)
    assert (dropped.to_client, dropped.to_broker) == (b"", mqtt.puback(31))  # MQTT matches it; AWS does not
    assert g.from_broker(child).to_client == child
    g.from_client(subscribe("test/+", packet_id=2))
    g.from_broker(mqtt.suback(2, [1], True))
    assert g.from_broker(parent).to_client == parent  # another filter of its matches


def test_a_shared_subscription_needs_subscribe_on_its_share_filter():
    """AWS authorizes `$share/NAME/FILTER` as iot:Subscribe on `topicfilter/$share/NAME/FILTER`: the
    session policy allows `$share/*/` before its topics; a filter outside them is refused (0x87)."""
    g = gateway()
    sent = g.from_client(subscribe("$share/workers/test/a", "$share/workers/other/a", packet_id=3))
    assert [f for f, _ in mqtt.parse_subscribe(packets_of(sent.to_broker)[0], True).entries] == ["$share/workers/test/a"]
    assert packets_of(g.from_broker(mqtt.suback(3, [1], True)).to_client)[0].raw == mqtt.suback(3, [1, 0x87], True)


def events_of(lifecycle: Lifecycle) -> list[tuple[str, dict]]:
    return [(mqtt.parse_publish(p, False).topic, json.loads(p.raw[p.body + 2 + len(mqtt.parse_publish(p, False).topic):]))
            for p in packets_of(b"".join(lifecycle.pending()))]


def presence_gateway(clock, lifecycle, client_id=CLIENT + "-1", level=5) -> Gateway:
    policies = (role_policy(REGION, ACCOUNT), session_policy(REGION, ACCOUNT, CLIENT, ["test/*"], any_client_id=True))
    g = Gateway(Grants(REGION, ACCOUNT, policies), None, clock, max_duration=100,
                presence=Presence(lifecycle, "ASIAKEY"))
    g.from_client(connect(client_id, level))
    g.from_broker(mqtt.packet(0x20, b"\x00\x00\x00" if level == 5 else b"\x00\x00"))
    return g


def test_a_connections_lifecycle_events_are_those_aws_documents():
    """Connected (with the session, principal, IP and version), subscribed (what was granted),
    unsubscribed, disconnected (why, and the connect's version), each to its $aws/events/ topic."""
    clock, lifecycle = Clock(), Lifecycle("unused", clock=lambda: 1573002230.757)
    g = presence_gateway(clock, lifecycle)
    g.from_client(subscribe("test/a", "other/b", packet_id=3))
    g.from_broker(mqtt.suback(3, [1], True))
    g.from_client(mqtt.packet(0xA2, struct.pack("!H", 4) + b"\x00" + text("test/a")))  # UNSUBSCRIBE
    g.from_client(mqtt.packet(0xE0, b"\x00"))  # DISCONNECT
    g.ended(by_broker=True)  # the broker closes after a DISCONNECT: still the client's doing
    (t1, connected), (t2, subscribed), (t3, unsubscribed), (t4, disconnected) = events_of(lifecycle)
    client = CLIENT + "-1"
    assert (t1, t2, t3, t4) == (f"$aws/events/presence/connected/{client}", f"$aws/events/subscriptions/subscribed/{client}",
                                f"$aws/events/subscriptions/unsubscribed/{client}",
                                f"$aws/events/presence/disconnected/{client}")
    session = connected["sessionIdentifier"]
    assert connected == {"clientId": client, "timestamp": 1573002230757, "eventType": "connected",
                         "sessionIdentifier": session, "principalIdentifier": "ASIAKEY", "ipAddress": "127.0.0.1",
                         "versionNumber": 1}
    assert subscribed["topics"] == ["test/a"] and subscribed["eventType"] == "subscribed"
    assert unsubscribed["topics"] == ["test/a"]
    assert disconnected == {"clientId": client, "timestamp": 1573002230757, "eventType": "disconnected",
                            "sessionIdentifier": session, "principalIdentifier": "ASIAKEY",
                            "clientInitiatedDisconnect": True, "disconnectReason": "CLIENT_INITIATED_DISCONNECT",
                            "versionNumber": 1}


@pytest.mark.parametrize("level", [4, 5])
@pytest.mark.parametrize("ending, reason", [
    (lambda g, clock: g.taken_over(), "DUPLICATE_CLIENTID"),
    (lambda g, clock: (setattr(clock, "now", clock.now + 100), g.from_client(publish("test/a"))), "WEBSOCKET_TTL_EXPIRATION"),
    (lambda g, clock: g.from_client(publish("other/a", qos=0)), "AUTH_ERROR"),
    (lambda g, clock: g.from_client(publish("test/a", qos=2)), "CLIENT_ERROR"),
    (lambda g, clock: None, "CONNECTION_LOST"),
    (lambda g, clock: setattr(clock, "now", clock.now + 90), "MQTT_KEEP_ALIVE_TIMEOUT"),  # quiet past 1.5 x 60 s
])
def test_a_disconnect_event_says_why_the_connection_ended(level, ending, reason):
    clock, lifecycle = Clock(), Lifecycle("unused")
    g = presence_gateway(clock, lifecycle, level=level)
    ending(g, clock)
    g.ended(by_broker=reason == "MQTT_KEEP_ALIVE_TIMEOUT")
    g.ended()  # once only
    events = events_of(lifecycle)
    assert [e["eventType"] for _, e in events] == ["connected", "disconnected"]
    assert events[1][1]["disconnectReason"] == reason and events[1][1]["clientInitiatedDisconnect"] is False


def test_lifecycle_events_skip_client_ids_with_wildcards_and_keep_a_bounded_queue():
    lifecycle = Lifecycle("unused")
    lifecycle.QUEUE = 3
    presence_gateway(Clock(), lifecycle, client_id="odd+id")
    assert lifecycle.pending() == []  # "Client IDs that contain # or + do not receive lifecycle events"
    for _ in range(5):
        presence_gateway(Clock(), lifecycle)
    assert len(lifecycle.pending()) == 3 and lifecycle.dropped == 2


def test_a_role_policy_with_the_client_id_variable_gives_each_client_its_own_topics():
    """`--role-policy` may use ${iot:ClientId} (and the Connect examples' conditions): the gateway
    gives IAM the connection's client id and its CONNECT's attributes."""
    role = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
         "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Subscribe", "iot:Receive"],
         "Resource": [f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/clients/${{iot:ClientId}}/*",
                      f"arn:aws:iot:{REGION}:{ACCOUNT}:topicfilter/clients/${{iot:ClientId}}/*"]}]}
    session = session_policy(REGION, ACCOUNT, CLIENT, ["clients/*"])
    g = Gateway(Grants(REGION, ACCOUNT, (role, session)), None, Clock())
    assert g.from_client(connect(CLIENT + "-1")).to_broker
    verdict = g.from_client(publish(f"clients/{CLIENT}-1/x", packet_id=1) + publish(f"clients/{CLIENT}-2/x", packet_id=2))
    assert verdict.to_broker == publish(f"clients/{CLIENT}-1/x", packet_id=1)
    assert verdict.to_client == mqtt.puback(2, 0x87, True)
    persistent = Gateway(Grants(REGION, ACCOUNT, (role, session)), None, Clock())
    body = text("MQTT") + bytes([4, 0]) + struct.pack("!H", 60) + text(CLIENT + "-3")  # clean session 0
    assert persistent.from_client(mqtt.packet(0x10, body)).close  # PersistentConnect is not in the list


@pytest.mark.parametrize("level", [4, 5])
def test_a_client_id_over_128_bytes_is_refused(level):
    g = Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT),)), None, Clock())
    verdict = g.from_client(connect("c" * 129, level))
    assert verdict.close and verdict.to_broker == b""
    assert verdict.to_client == (mqtt.connack(0x85, True) if level == 5 else b"")
    assert Gateway(Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT),)), None, Clock()).from_client(
        connect("c" * 128, level)).to_broker


def test_an_unsubscribe_with_more_than_8_filters_is_passed_on():
    """AWS documents no limit for UNSUBSCRIBE, and its SDK's IoT Core checks limited SUBSCRIBE only."""
    g = gateway()
    filters = [f"test/{i}" for i in range(9)]
    unsubscribe = mqtt.packet(0xA2, struct.pack("!H", 5) + b"\x00" + b"".join(text(f) for f in filters))
    verdict = g.from_client(unsubscribe)
    assert verdict.to_broker == unsubscribe and not verdict.close


def test_a_burst_right_after_a_resume_is_delayed_not_discarded():
    """A resumed session's QoS 1 messages that come at once after its CONNACK queued while it was
    away (uncounted: another tool's, or before a restart of the stack): delayed, not discarded,
    for the connection's life: the stack cannot tell them from stored ones."""
    clock = Clock()
    sessions = StoredSessions(3600, clock)
    sessions.left(CLIENT + "-1", {"test/a": 1}, mqtt311=False)  # nothing published through the front since
    g = session_gateway(clock, sessions)
    g.from_client(connect_v5(expiry=3600, clean=False))
    g.from_broker(mqtt.packet(0x20, b"\x01\x00\x00"))  # session present, 0 stored as far as the stack knows
    burst = [g.from_broker(publish("test/a", packet_id=i)) for i in range(1, 151)]
    assert all(v.to_client for v in burst) and not any(v.to_broker for v in burst)
    assert burst[99].pause == 0 and burst[149].pause > 0  # the rate's 100 at once, then held back


def test_the_policies_attached_to_an_identity_count_as_one_as_aws_evaluates_them():
    """A principal's attached AWS IoT policies are one set of statements (any Allow allows, any
    Deny denies), intersected as a whole with the role's and the keys' session policy."""
    from iotnotify.local.iot_policies import combined

    arn = f"arn:aws:iot:{REGION}:{ACCOUNT}"
    first = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}:topic/a"}]}
    second = {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "iot:Publish", "Resource": f"{arn}:topic/b"}}
    third = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{arn}:topic/b"}]}
    grants = Grants(REGION, ACCOUNT, (role_policy(REGION, ACCOUNT), combined([first, second])))
    assert grants.allows("iot:Publish", "topic/a") and grants.allows("iot:Publish", "topic/b")
    assert not Grants(REGION, ACCOUNT, (combined([first, second, third]),)).allows("iot:Publish", "topic/b")


def test_a_session_taken_over_hands_its_filters_to_the_newer_connection():
    """A half-open reconnection: the newer connection takes the id while the older one still holds
    the session; the record (its filters) goes with the session, so the stack still counts what is
    stored for it later."""
    clock = Clock()
    sessions = StoredSessions(3600, clock)
    older = session_gateway(clock, sessions)
    older.from_client(connect_v5(expiry=3600))
    older.from_broker(mqtt.packet(0x20, b"\x00\x00\x00"))
    older.from_client(subscribe("test/a", packet_id=1))
    older.from_broker(mqtt.suback(1, [1], True))
    newer = session_gateway(clock, sessions)
    newer.from_client(connect_v5(expiry=3600, clean=False))
    older.taken_over()
    older.ended()
    newer.from_broker(mqtt.packet(0x20, b"\x01\x00\x00"))  # session present
    assert newer.subscriptions.granted == {"test/a": 1} and "test/a" in newer.subscriptions
    newer.ended()
    sessions.published("test/a")
    assert sessions._away[CLIENT + "-1"].stored == 1


def test_a_session_resumed_without_a_record_is_not_counted_for():
    """After a restart of the stack its filters are not known: nothing is counted for it (rather
    than a count of 0 that would pace nothing and never be right)."""
    clock = Clock()
    sessions = StoredSessions(3600, clock)
    g = session_gateway(clock, sessions)
    g.from_client(connect_v5(expiry=3600, clean=False))
    g.from_broker(mqtt.packet(0x20, b"\x01\x00\x00"))  # session present, no record
    g.ended()
    assert sessions._away[CLIENT + "-1"].filters is None
    sessions.published("test/a")
    assert sessions._away[CLIENT + "-1"].stored == 0


def test_what_a_session_may_not_receive_or_gets_through_a_share_is_not_counted_as_stored():
    sessions = StoredSessions(3600, Clock())
    sessions.left("c1", {"test/#": 1, "$share/g/other/#": 1}, mqtt311=False, receives=lambda t: t != "test/secret")
    for topic in ("test/a", "test/secret", "other/x"):
        sessions.published(topic)
    assert sessions._away["c1"].stored == 1

