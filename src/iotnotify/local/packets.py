"""Just enough of MQTT 3.1.1 and 5 packet encoding for the local gateway to read and answer packets.

It frames a byte stream into packets, reads the fields AWS IoT Core's rules look at (CONNECT's
client id and keep-alive, PUBLISH's topic, SUBSCRIBE's filters, SUBACK's codes) and builds the few
packets the gateway sends itself (CONNACK, PUBACK, SUBACK, DISCONNECT). Everything else passes
through as the bytes it came in. Layouts: MQTT 3.1.1 section 3, MQTT 5.0 section 3 (OASIS).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, DISCONNECT = 1, 2, 3, 4, 8, 9, 10, 14
TOPIC_ALIAS, SERVER_KEEP_ALIVE, USER_PROPERTY, SESSION_EXPIRY = 0x23, 0x13, 0x26, 0x11
SUBSCRIPTION_IDENTIFIER, TOPIC_ALIAS_MAXIMUM, MAXIMUM_QOS, RETAIN_AVAILABLE = 0x0B, 0x22, 0x24, 0x25
WILDCARD_AVAILABLE, SUBSCRIPTION_IDS_AVAILABLE, SHARED_AVAILABLE = 0x28, 0x29, 0x2A

# MQTT 5 property ids by how their values are encoded (MQTT 5.0, 2.2.2.2)
_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x18, 0x27}
_VARINT = {0x0B}
_STRING = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BINARY = {0x09, 0x16}
_PAIR = {0x26}


class Malformed(ValueError):
    """Bytes that are not an MQTT packet of the kind expected."""


class TooLarge(Malformed):
    """A packet longer than the framer's limit (known from its header, before its body arrives)."""


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    """A variable byte integer at `pos`: (value, position after it)."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(data):
            raise Malformed("truncated variable byte integer")
        byte = data[pos + i]
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise Malformed("variable byte integer longer than 4 bytes")


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise Malformed("truncated two-byte integer")
    return int(struct.unpack_from("!H", data, pos)[0])


def _string(data: bytes, pos: int) -> tuple[str, int]:
    """A UTF-8 string with its two-byte length: (text, position after it)."""
    size = _u16(data, pos)
    end = pos + 2 + size
    if end > len(data):
        raise Malformed("truncated string")
    try:
        return data[pos + 2 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise Malformed("string is not UTF-8") from None


def _properties(data: bytes, pos: int) -> tuple[dict[int, object], int, int]:
    """MQTT 5 properties at `pos`: ({id: value} for the single-valued ones, start, end)."""
    length, start = read_varint(data, pos)
    end = start + length
    if end > len(data):
        raise Malformed("truncated properties")
    found: dict[int, object] = {}
    at = start
    while at < end:
        pid, at = read_varint(data, at)
        if pid in _BYTE:
            found[pid], at = data[at], at + 1
        elif pid in _U16:
            found[pid], at = _u16(data, at), at + 2
        elif pid in _U32:
            found[pid], at = struct.unpack_from("!I", data, at)[0], at + 4
        elif pid in _VARINT:
            found[pid], at = read_varint(data, at)
        elif pid in _STRING or pid in _BINARY:
            at += 2 + _u16(data, at)
        elif pid in _PAIR:  # user properties: their total size of keys and values is kept
            key_size = _u16(data, at)
            value_size = _u16(data, at + 2 + key_size)
            at += 4 + key_size + value_size
            found[pid] = int(found.get(pid, 0)) + key_size + value_size  # type: ignore[call-overload]
        else:
            raise Malformed(f"unknown property 0x{pid:02x}")
    if at != end:
        raise Malformed("properties overrun their length")
    return found, pos, end


@dataclass(frozen=True)
class Packet:
    """One whole packet: its first byte (type and flags), its bytes, and where its body starts."""

    first: int
    raw: bytes
    body: int

    @property
    def kind(self) -> int:
        return self.first >> 4


class Framer:
    """Cuts a byte stream into whole packets, whatever the chunks it arrives in."""

    def __init__(self, limit: int | None = None) -> None:
        self._buffer = bytearray()
        self.limit = limit  # the longest packet body accepted (None: MQTT's own limit)

    def feed(self, data: bytes) -> list[Packet]:
        """The packets completed by `data` (the rest is kept for the next call)."""
        buffer = self._buffer
        buffer += data
        packets, pos, size = [], 0, len(buffer)
        while size - pos >= 2:
            try:
                length, body = read_varint(buffer, pos + 1)
            except Malformed:
                if size - pos - 1 < 4:
                    break  # the length itself is not all here yet
                raise
            if self.limit is not None and length > self.limit:
                raise TooLarge(f"packet of {length} bytes")
            end = body + length
            if end > size:
                break
            packets.append(Packet(buffer[pos], bytes(buffer[pos:end]), body - pos))
            pos = end
        del buffer[:pos]
        return packets


def packet(first: int, body: bytes) -> bytes:
    """A packet from its first byte and body."""
    return bytes([first]) + encode_varint(len(body)) + body


@dataclass(frozen=True)
class Connect:
    """What CONNECT says: protocol level (4: 3.1.1, 5: 5), keep-alive and where it is, client id,
    its will's topic and retain flag (None, False without a will), whether it starts a clean
    session, and (MQTT 5) its session expiry (0 when absent: the session ends with the connection)."""

    level: int
    keep_alive: int
    keep_alive_at: int
    client_id: str
    will_topic: str | None = None
    will_retain: bool = False
    clean: bool = True
    session_expiry: int = 0


WILL_FLAG, WILL_RETAIN, CLEAN = 0x04, 0x20, 0x02  # CONNECT's flags (MQTT 3.1.1 3.1.2.3)
PROPERTIES_AT = 10  # where an MQTT 5 CONNECT's properties start in its body (after name, level, flags, keep-alive)


def parse_connect(p: Packet) -> Connect:
    data = p.raw
    name, pos = _string(data, p.body)
    if name not in ("MQTT", "MQIsdp") or pos + 4 > len(data):
        raise Malformed("not a CONNECT")
    level, flags, keep_alive_at = data[pos], data[pos + 1], pos + 2
    keep_alive = _u16(data, keep_alive_at)
    pos += 4
    expiry = 0
    if level == 5:
        properties, _, pos = _properties(data, pos)
        expiry = int(properties.get(SESSION_EXPIRY, 0))  # type: ignore[call-overload]
    client_id, pos = _string(data, pos)
    will_topic = None
    if flags & WILL_FLAG:
        if level == 5:
            _, _, pos = _properties(data, pos)  # the will's own properties
        will_topic, _ = _string(data, pos)
    return Connect(level, keep_alive, keep_alive_at, client_id, will_topic,
                   bool(flags & WILL_FLAG and flags & WILL_RETAIN), bool(flags & CLEAN), expiry)


def with_keep_alive(p: Packet, connect: Connect, seconds: int) -> bytes:
    """The CONNECT's bytes with another keep-alive."""
    return p.raw[: connect.keep_alive_at] + struct.pack("!H", seconds) + p.raw[connect.keep_alive_at + 2 :]


@dataclass(frozen=True)
class Publish:
    """What PUBLISH says: topic ('' when only an alias names it), QoS, retain, packet id, topic alias,
    payload size, and the bytes of its user properties' keys and values."""

    topic: str
    qos: int
    retain: bool
    packet_id: int | None
    alias: int | None
    payload_size: int
    user_properties_size: int = 0


def parse_publish(p: Packet, v5: bool) -> Publish:
    data = p.raw
    qos, retain = (p.first >> 1) & 3, bool(p.first & 1)
    topic, pos = _string(data, p.body)
    packet_id = None
    if qos:
        packet_id, pos = _u16(data, pos), pos + 2
    alias, user_properties = None, 0
    if v5 and pos < len(data) and data[pos] == 0:  # no properties, as most messages: nothing to read
        pos += 1
    elif v5:
        props, _, pos = _properties(data, pos)
        found = props.get(TOPIC_ALIAS)
        alias = found if isinstance(found, int) else None
        user_properties = int(props.get(USER_PROPERTY, 0))  # type: ignore[call-overload]
    return Publish(topic, qos, retain, packet_id, alias, len(data) - pos, user_properties)


@dataclass(frozen=True)
class Subscribe:
    """SUBSCRIBE (or UNSUBSCRIBE): packet id, its MQTT 5 properties' bytes, and (filter, options) pairs."""

    packet_id: int
    properties: bytes
    entries: list[tuple[str, int]]


def parse_subscribe(p: Packet, v5: bool, unsubscribe: bool = False) -> Subscribe:
    data = p.raw
    packet_id, pos = _u16(data, p.body), p.body + 2
    properties = b""
    if v5:
        _, start, pos = _properties(data, pos)
        properties = data[start:pos]
    entries = []
    while pos < len(data):
        topic_filter, pos = _string(data, pos)
        options = 0
        if not unsubscribe:
            if pos >= len(data):
                raise Malformed("filter without options")
            options, pos = data[pos], pos + 1
        entries.append((topic_filter, options))
    if not entries:
        raise Malformed("no filters")
    return Subscribe(packet_id, properties, entries)


def subscribe(packet_id: int, properties: bytes, entries: list[tuple[str, int]]) -> bytes:
    """A SUBSCRIBE with these filters (`properties` as parsed: empty for MQTT 3.1.1)."""
    body = bytearray(struct.pack("!H", packet_id) + properties)
    for topic_filter, options in entries:
        encoded = topic_filter.encode()
        body += struct.pack("!H", len(encoded)) + encoded + bytes([options])
    return packet(0x82, bytes(body))


@dataclass(frozen=True)
class Suback:
    packet_id: int
    codes: list[int]


def parse_suback(p: Packet, v5: bool) -> Suback:
    data = p.raw
    packet_id, pos = _u16(data, p.body), p.body + 2
    if v5:
        _, _, pos = _properties(data, pos)
    return Suback(packet_id, list(data[pos:]))


def suback(packet_id: int, codes: list[int], v5: bool) -> bytes:
    return packet(0x90, struct.pack("!H", packet_id) + (b"\x00" if v5 else b"") + bytes(codes))


def puback(packet_id: int, code: int = 0, v5: bool = False) -> bytes:
    """PUBACK for `packet_id`; a reason code only in MQTT 5 (and only if not success)."""
    return packet(0x40, struct.pack("!H", packet_id) + (bytes([code]) if v5 and code else b""))


def connack(code: int, v5: bool) -> bytes:
    """A refusing CONNACK (MQTT 5 reason code, or 3.1.1 return code)."""
    return packet(0x20, bytes([0, code]) + (b"\x00" if v5 else b""))


def disconnect(code: int) -> bytes:
    """An MQTT 5 DISCONNECT from the server with a reason code."""
    return packet(0xE0, bytes([code, 0]))


def connack_code(p: Packet) -> int:
    """The reason (or return) code of a CONNACK."""
    if len(p.raw) < p.body + 2:
        raise Malformed("truncated CONNACK")
    return p.raw[p.body + 1]


def _spans(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """(id, first byte, end) of each MQTT 5 property between `start` and `end` (already checked)."""
    spans, at = [], start
    while at < end:
        first = at
        pid, at = read_varint(data, at)
        if pid in _BYTE:
            at += 1
        elif pid in _U16:
            at += 2
        elif pid in _U32:
            at += 4
        elif pid in _VARINT:
            at = read_varint(data, at)[1]
        elif pid in _PAIR:
            at += 2 + _u16(data, at)
            at += 2 + _u16(data, at)
        else:  # a string or binary (_properties has refused any other)
            at += 2 + _u16(data, at)
        spans.append((pid, first, at))
    return spans


def subscribe_properties(p: Packet) -> dict[int, object]:
    """An MQTT 5 SUBSCRIBE's properties (as _properties gives them)."""
    return _properties(p.raw, p.body + 2)[0]


def _with_properties(data: bytes, first: int, body: int, at: int, replaced: dict[int, bytes]) -> bytes:
    """The MQTT 5 packet `data` (its body from `body`) with the properties at `at` in `replaced`
    (id -> the encoded value) in place of its own, the rest kept."""
    _, start, end = _properties(data, at)
    _, inner = read_varint(data, start)
    kept = b"".join(data[a:b] for pid, a, b in _spans(data, inner, end) if pid not in replaced)
    props = kept + b"".join(bytes([pid]) + value for pid, value in replaced.items())
    return packet(first, data[body:at] + encode_varint(len(props)) + props + data[end:])


def with_connack_properties(p: Packet, replaced: dict[int, bytes]) -> bytes:
    """An MQTT 5 CONNACK with the properties in `replaced` in place of the broker's own."""
    return _with_properties(p.raw, p.first, p.body, p.body + 2, replaced)


def with_connect_properties(connect: bytes, replaced: dict[int, bytes]) -> bytes:
    """An MQTT 5 CONNECT (its bytes) with the properties in `replaced` in place of the client's own."""
    _, body = read_varint(connect, 1)
    return _with_properties(connect, connect[0], body, body + PROPERTIES_AT, replaced)


def connect(client_id: str, keep_alive: int = 30) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and no will, user name or password."""
    name, encoded = b"MQTT", client_id.encode()
    return packet(0x10, struct.pack("!H", len(name)) + name + bytes([4, 0x02]) + struct.pack("!H", keep_alive)
                  + struct.pack("!H", len(encoded)) + encoded)


def publish(topic: str, payload: bytes, qos: int, retain: bool, packet_id: int = 1) -> bytes:
    """An MQTT 3.1.1 PUBLISH (a packet id only at QoS 1)."""
    encoded = topic.encode()
    body = struct.pack("!H", len(encoded)) + encoded + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | (qos << 1) | int(retain), body)


DISCONNECT_311 = b"\xe0\x00"
