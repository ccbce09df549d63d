"""A `send` as one request (Outgoing), and the ways it may go (route): through a running agent,
over HTTPS (AWS IoT Core's POST /topics/...) or over an MQTT connection of its own (`send --via
auto|mqtt|https`, IOTNOTIFY_VIA). The CLI's `send` and the quick path (quick/) both ask `route`,
which decides from the request and the settings alone, before anything is imported for sending.
It imports nothing: a send through the agent reads it without typing, enum or dataclasses."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from iotnotify.mqtt.options import Will
    from iotnotify.properties import Properties
    from iotnotify.settings import Settings
    from iotnotify.signing import Signer

VIAS = ("auto", "mqtt", "https")
AGENT, HTTPS, MQTT = "agent", "https", "mqtt"


class Outgoing:
    """What a `send` publishes, and how: the messages (`payloads`, read as they come for -l and
    --records), their topic (with --records, the default for records without one), QoS, retain
    flag and MQTT 5 properties; seconds to wait for acknowledgements after the input ends; the
    file for what was not delivered; JSON records instead of payloads; the connections to spread
    them over; a will for the connection; whether each message gets an `iotnotify-id` (over MQTT
    5). `single`: one message known in advance (the quick path says so before reading it; by
    default, from `payloads`)."""

    __slots__ = (
        "connections",
        "failed",
        "ids",
        "payloads",
        "properties",
        "qos",
        "records",
        "retain",
        "signer",
        "single",
        "timeout",
        "topic",
        "will",
    )

    def __init__(self, topic: str | None, payloads: Iterable[bytes] = (), qos: int = 1, retain: bool = False,
                 timeout: float = 30.0, failed: str | None = None, properties: Properties | None = None,
                 records: bool = False, connections: int = 1, will: Will | None = None,
                 single: bool | None = None, ids: bool = True, signer: Signer | None = None) -> None:
        self.topic, self.payloads, self.qos, self.retain, self.timeout = topic, payloads, qos, retain, timeout
        self.failed, self.properties, self.records, self.connections, self.will = \
            failed, properties or None, records, connections, will
        self.ids, self.signer = ids, signer
        self.single = (not records and isinstance(payloads, (list, tuple)) and len(payloads) == 1) \
            if single is None else single

    @property
    def whole(self) -> bool:
        """Whether every payload is known before sending (a list: an argument, a file, all of stdin)."""
        return isinstance(self.payloads, (list, tuple))

    def __repr__(self) -> str:  # the payloads are the user's: not shown
        return f"Outgoing(topic={self.topic!r}, qos={self.qos}, records={self.records})"


def route(outgoing: Outgoing, via: str, agent: bool, settings: Callable[[], Settings]) -> Iterator[tuple[str, bool]]:
    """The ways to try the send, in order, each with whether another follows: the next is tried
    only when the one before could not take the send and delivered nothing of it (no agent serves
    these settings; the broker takes no HTTPS publish).

    `via` "https": HTTPS alone (UsageError now for what only MQTT can do). Else an agent first
    (unless `agent` is False: --no-agent, IOTNOTIFY_NO_AGENT) for a send on one connection without
    a will (a will belongs to a connection of its own) or a signature (the private key stays in
    this process); then, by default ("auto"), HTTPS for one
    message known in advance that needs nothing of MQTT (no will, properties or client id, MQTT 5,
    one connection): two round trips on the network instead of four; then MQTT. `settings` is
    called only once an agent did not take the send (the quick path resolves none before)."""
    if via == HTTPS:
        _check_https(outgoing)
        yield HTTPS, False
        return
    if agent and outgoing.connections == 1 and outgoing.will is None and outgoing.signer is None:
        yield AGENT, True
    if via == "auto" and outgoing.single and outgoing.connections == 1 and outgoing.will is None \
            and not outgoing.properties and outgoing.signer is None:
        chosen = settings()
        from iotnotify.settings import Protocol

        if chosen.client_id is None and chosen.protocol == Protocol.V5:
            yield HTTPS, True
    yield MQTT, False


def _check_https(outgoing: Outgoing) -> None:
    from iotnotify.errors import UsageError

    if outgoing.will is not None:
        raise UsageError("--will-topic needs an MQTT connection: not with --via https")
    if outgoing.connections > 1:
        raise UsageError("--connections needs MQTT: not with --via https")
    if outgoing.properties:
        raise UsageError("message properties need MQTT: not with --via https")
    if outgoing.signer is not None:
        raise UsageError("--sign needs MQTT (a signature is user properties): not with --via https")
