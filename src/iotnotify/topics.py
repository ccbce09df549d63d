"""Topic and filter validation: MQTT's rules plus AWS IoT Core's hard limits. Pure functions."""

from __future__ import annotations

from iotnotify import limits
from iotnotify.errors import UsageError

MAX_TOPIC_BYTES = limits.MAX_TOPIC_BYTES
AWS_MAX_SLASHES = limits.MAX_SLASHES
AWS_MAX_PAYLOAD_BYTES = limits.MAX_PAYLOAD_BYTES
AWS_MAX_FILTERS_PER_SUBSCRIBE = limits.MAX_FILTERS_PER_SUBSCRIBE
MQTT_STRING = 65_535  # bytes in an MQTT string or binary field
MQTT_MAX_PAYLOAD_BYTES = 268_435_455 - MQTT_STRING  # packet limit less the largest topic, a safe bound
TUTORIAL_TOPIC = "/serverless/pubsub"  # the tutorial's topic: the keys endpoint's, local's and tail's default


def refused_character(text: str) -> str | None:
    """The first character of `text` an MQTT string may not hold, in words ('U+0001 (a control
    character)'), or None. MQTT 5.0 1.5.4 forbids U+0000 and says a string SHOULD NOT hold the
    control characters U+0001-U+001F and U+007F-U+009F or Unicode noncharacters, and that a receiver
    may close the connection for them; Mosquitto does (mosquitto_validate_utf8), and so might AWS IoT
    Core: refused before they reach a broker. A printable text has none of them (the common case)."""
    if text.isprintable():
        return None
    for char in text:
        code = ord(char)
        if code <= 0x1F or 0x7F <= code <= 0x9F:
            return f"U+{code:04X} (a control character)"
        if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            return f"U+{code:04X} (a Unicode noncharacter)"
    return None


def check_string(text: str, kind: str, limit: int = MAX_TOPIC_BYTES, over: str = "", empty: bool = False) -> bytes:
    """`text` as UTF-8, if an MQTT string may hold it: not empty (unless `empty`), encodable (argv
    bytes that are not UTF-8 are not), none of the characters MQTT forbids or brokers refuse, at most
    `limit` bytes (`over` names whose limit it is); UsageError naming `kind` otherwise. For topics,
    filters, client ids and string properties alike."""
    if text == "" and not empty:
        raise UsageError(f"{kind} is empty")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{kind} {text[:200].encode('utf-8', 'replace').decode()!r} is not valid UTF-8") from None
    if (bad := refused_character(text)) is not None:
        raise UsageError(f"{kind} {text[:200]!r} contains {bad}, which MQTT brokers refuse")
    if len(data) > limit:
        raise UsageError(f"{kind} is {len(data)} UTF-8 bytes, over {over or f'the limit of {limit}'}")
    return data


def counted_slashes(text: str) -> int:
    """The forward slashes AWS IoT Core counts in a topic or filter against its 7: not the two of a
    shared subscription's `$share/NAME/` nor the three of Basic Ingest's `$aws/rules/RULE/` (the
    developer guide's MQTT page, "Shared subscriptions"; the quotas, "Maximum number of slashes")."""
    levels = text.split("/")
    if levels[0] == "$share" and len(levels) > 2:
        levels = levels[2:]
    elif levels[0].lower() == "$aws" and len(levels) > 3 and levels[1] == "rules":
        levels = levels[3:]
    return len(levels) - 1


PUBLISH, SUBSCRIBE = "publish", "subscribe"
RESERVED = (  # AWS IoT Core's reserved topics (Developer Guide, "Reserved topics"), and what a client may do there
    ("$aws/rules/", (PUBLISH,)),  # Basic Ingest: to a rule, never to subscribers
    ("$aws/events/", (SUBSCRIBE,)),  # lifecycle events
    ("$aws/things/", (PUBLISH, SUBSCRIBE)),  # shadows, jobs, Device Defender, tunnels, streams
    ("$aws/sitewise/", (SUBSCRIBE,)),  # asset model notifications
    ("$aws/certificates/", (PUBLISH, SUBSCRIBE)),  # fleet provisioning
    ("$aws/provisioning-templates/", (PUBLISH, SUBSCRIBE)),
)


def reserved_refusal(text: str, operation: str) -> str | None:
    """Why AWS IoT Core ends a connection that does `operation` on `text` (a topic, or a filter,
    shared or not), or None: topics beginning with '$' are AWS's, used only as listed ("Unsupported
    publish or subscribe operations to reserved topics can result in a terminated connection")."""
    parts = shared_parts(text) if operation == SUBSCRIBE else None
    topic = parts[1] if parts else text
    if not topic.startswith("$"):
        return None
    for prefix, allowed in RESERVED:
        if topic.startswith(prefix):
            if operation in allowed:
                return None
            return f"reserved by AWS IoT Core for {' and '.join(allowed)} only"
    return "reserved by AWS IoT Core (every topic beginning with '$' but those it lists)"


def over_aws_limits(text: str) -> bool:
    """Whether a topic or filter is over AWS IoT Core's 256 bytes or 7 counted slashes."""
    return len(text.encode()) > MAX_TOPIC_BYTES or counted_slashes(text) > AWS_MAX_SLASHES


def _check_aws_depth(text: str, kind: str) -> None:
    """AWS IoT Core refuses topics and filters with more than 7 forward slashes (counted_slashes)."""
    slashes = counted_slashes(text)
    if slashes > AWS_MAX_SLASHES:
        raise UsageError(
            f"{kind} {text!r} has {slashes} '/' but AWS IoT Core allows at most {AWS_MAX_SLASHES}"
        )


def check_topic(topic: str, aws: bool) -> str:
    """Validate a topic to publish to; `aws` adds AWS IoT Core's limits. Returns the topic."""
    check_string(topic, "topic")
    if "+" in topic or "#" in topic:
        raise UsageError(f"topic {topic!r} contains a wildcard ('+' or '#'): publish needs an exact topic")
    if aws:
        _check_aws_depth(topic, "topic")
        why = reserved_refusal(topic, PUBLISH)
        if why:
            raise UsageError(f"cannot publish to {topic!r}: {why}")
    return topic


EVENTS = "$aws/events/*"  # AWS IoT Core's lifecycle events (presence, subscriptions) of every client, as an IAM pattern
SHARE = "$share/"  # a shared subscription's filter: $share/NAME/FILTER (MQTT 5.0 4.8.2; AWS IoT Core: 5 and 3.1.1)


def shared_parts(topic_filter: str) -> tuple[str, str] | None:
    """(share name, filter) of a shared subscription's `$share/NAME/FILTER`; None for another filter."""
    if not topic_filter.startswith(SHARE):
        return None
    name, _, inner = topic_filter[len(SHARE):].partition("/")
    return name, inner


def shared(filters: list[str], group: str) -> list[str]:
    """`filters` as shared subscriptions of `group` (those that already are stay as they are)."""
    return [f if f.startswith(SHARE) else f"{SHARE}{group}/{f}" for f in filters]


MAX_SHARE_NAME = 128  # characters of a share name (AWS IoT Core's; MQTT sets none)


def check_share_name(name: str) -> str:
    """A share name as MQTT and AWS IoT Core allow it: 1 to 128 characters, no '/', '+' or '#'."""
    if not name or len(name) > MAX_SHARE_NAME or any(c in name for c in "/+#"):
        raise UsageError(f"share name {name!r}: it must be 1 to {MAX_SHARE_NAME} characters, without '/', '+' or '#'")
    return name


def check_filter(topic_filter: str, aws: bool) -> str:
    """Validate a subscription filter (wildcards allowed where MQTT allows them; `$share/NAME/`
    before one makes it a shared subscription). Returns it."""
    check_string(topic_filter, "filter")
    parts = shared_parts(topic_filter)
    if parts is not None:
        if not parts[1]:
            raise UsageError(f"filter {topic_filter!r}: a shared subscription is $share/NAME/FILTER")
        check_share_name(parts[0])
    levels = (parts[1] if parts else topic_filter).split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise UsageError(f"filter {topic_filter!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise UsageError(f"filter {topic_filter!r}: '+' must be a whole level")
    if aws:
        _check_aws_depth(topic_filter, "filter")
        why = reserved_refusal(topic_filter, SUBSCRIBE)
        if why:
            raise UsageError(f"cannot subscribe to {topic_filter!r}: {why}")
    return topic_filter


def check_payload(size: int, aws: bool) -> None:
    """Refuse a payload the broker would refuse: 128 KB on AWS IoT Core, MQTT's packet limit elsewhere."""
    limit = AWS_MAX_PAYLOAD_BYTES if aws else MQTT_MAX_PAYLOAD_BYTES
    if size > limit:
        where = "AWS IoT Core's limit" if aws else "MQTT's limit"
        raise UsageError(f"payload of {size} bytes is over {where} of {limit} bytes")


def subscribe_batches(filters: list[str]) -> list[list[str]]:
    """Split filters into SUBSCRIBE packets of at most 8, AWS IoT Core's limit (harmless elsewhere)."""
    size = AWS_MAX_FILTERS_PER_SUBSCRIBE
    return [filters[i : i + size] for i in range(0, len(filters), size)]


def is_aws_host(host: str) -> bool:
    """Whether `host` is an AWS IoT Core endpoint (its limits and flow control then apply)."""
    host = host.lower().rstrip(".")
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches MQTT `topic_filter` (`+` one level, `#` this level and all below;
    wildcards do not match topics starting with `$`, MQTT 5.0 4.7.2)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)
