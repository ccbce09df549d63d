"""A session with the broker, above one transport at a time, as httpx puts its Client above its
transports. The session owns what is the same whatever the protocol: the keys and the credentials
awscrt signs with, a new transport under a new client id when new keys require one (with the QoS 1
messages it had in flight published again), pacing to AWS IoT Core's limits, the wait for the first
connection (TLS diagnosed early), what the broker's disconnections mean, and refusals in words.
A transport (v5.py, v311.py, https.py: transport.py says what each does) moves packets and tells
the session what happened. Under AWS IoT Core's rules the session also decides when a lost
connection is made again (retry.py), with a new transport where awscrt's client would wait."""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from iotnotify import limits, trace
from iotnotify.crt.nodelay import set_nodelay
from iotnotify.errors import ConnectError, DeliveryError, IotNotifyError, Refused
from iotnotify.keys import KeySource, TemporaryKeys
from iotnotify.keys.allowance import describe, describe_client
from iotnotify.messages import Message
from iotnotify.mqtt.diagnose import classify, probe_tls, taken_over
from iotnotify.mqtt.options import ConnectOptions, client_id_for
from iotnotify.mqtt.outcome import (
    LOST,
    MQTT311_FAILURE,
    NOT_AUTHORIZED,
    SESSION_TAKEN_OVER,
    Kind,
    OnDone,
    Outcome,
    reason,
)
from iotnotify.mqtt.retry import Plan, Retry
from iotnotify.mqtt.transport import Answer, OnState, State, Transport
from iotnotify.properties import Properties
from iotnotify.proxy import crt_options, proxy_for
from iotnotify.settings import Protocol as MqttVersion
from iotnotify.shown import shown
from iotnotify.throttle import Pacer
from iotnotify.trace import log

if TYPE_CHECKING:
    from awscrt import auth

OnMessage = Callable[[Message], None]



TRANSIENT = {0x80, 0x88, 0x89, 0x8B, 0x8D, 0x98, 0x9C, 0x9D, 0x9F, 0xA0}
"""DISCONNECT reason codes after which reconnecting may work (the server going away, busy, a keep-alive
missed...); any other reason code means the broker will refuse the same again: the session fails."""
NODELAY_POLL = (0.0005, 0.02)  # s between looks for the new socket, doubling (Session._nodelay_early)
TLS_PROBE_AFTER = 1.5  # s: awscrt reports TLS failures only after a long delay; diagnose sooner
# s without a single PUBACK, on a connection up as long, while a QoS 1 message handed over as long
# ago waits for its own: the broker dropped it (AWS IoT Core discards publishes over 100 a second,
# with no PUBACK: a network stall that delivers a paced stream in a burst does it), and MQTT lets a
# client publish it again only on a new connection (MQTT 5, 4.4); awscrt's client would hold it, and
# its place in the broker's receive maximum, for ever (Session._check_acks). PUBACKs still coming
# (a slow uplink, a backlog after an outage) are progress: no reconnection for those.
ACK_DEADLINE = 10.0

Entry = tuple[str, bytes, int, bool, OnDone, "Properties | None"]  # a QoS 1 message until acknowledged


class Session:
    """A connected client whatever the transport: connect, subscribe, publish, disconnect (also as a
    context manager). Under AWS IoT Core's rules it paces its publishes to AWS's limits."""

    def __init__(self, source: KeySource, keys: TemporaryKeys, options: ConnectOptions,
                 make: type[Transport], on_message: OnMessage | None = None,
                 on_state: OnState | None = None) -> None:
        from awscrt import auth

        self.source = source
        self.keys = keys
        self.options = options
        self.client_id = options.client_id or options.session or client_id_for(keys)
        self.aws = keys.aws_rules
        self.carries_properties = options.protocol == MqttVersion.V5 and make.scheme == "wss"  # MQTT 5, not HTTPS
        self.on_message = on_message  # None: no callback for received messages is registered at all
        self.on_state = on_state or (lambda _state, _attempt: None)
        # long-running: hears why the broker ended the connection (which is then made again)
        self.on_dropped: Callable[[IotNotifyError], None] | None = None
        self._on_notice: Callable[[str], None] | None = None  # hears what the broker settled otherwise than asked
        self._notices: list[str] = []  # said before anyone listened (the first CONNACK's)
        self._kept_said = False
        self.key_error: IotNotifyError | None = None
        self.fatal: IotNotifyError | None = None  # why the broker ended the session for good
        self.reasons: dict[int, str] = {}  # the broker's reason string for each code it ended a connection with
        self.subscriptions: list[tuple[list[str], int]] = []  # to subscribe again after a clean reconnection
        self.last_topic: str | None = None
        self.closing = False  # disconnect() was called: no new transport from now on
        self.credentials = auth.AwsCredentialsProvider.new_delegate(self._weakly(weakref.ref(self)))
        self._make = make
        self.proxy = proxy_for(make.scheme, keys.host, options.proxy)
        self.pacer = Pacer(limits.PUBLISH_RATE, limits.THROUGHPUT) if self.aws and make.paced else None
        # under AWS rules, when to connect again (a transport whose client can be told to try each second)
        self.retry = Retry(self.min_reconnect_delay, options.max_reconnect_delay) if self.aws and make.steady \
            else None
        self._retry_timer: threading.Timer | None = None
        self._attempt = 0  # attempts since the last connection (whichever transport made them)
        # QoS 1 messages not yet acknowledged, to publish again on a new transport (a renewal, or a
        # reconnection the session hastens): only where that can happen, under AWS rules
        self._track = self.aws and make.has_client_id and (
            self.retry is not None or not (options.client_id or options.session))
        self._inflight: dict[int, Entry] = {}
        self._handed: dict[int, float] = {}  # when each was handed to the transport (oldest first)
        self._inflight_lock = threading.Lock()
        self._ack_timer: threading.Timer | None = None  # checks that the oldest of them is acknowledged
        self._last_ack = float("-inf")  # when the broker last answered one of them
        self._up_since: float | None = None  # when the current connection was made, while it lasts
        self._tokens = itertools.count()
        self._replacing = threading.Lock()  # held while a transport is replaced (renewal or reconnection)
        self._swap = threading.Lock()  # the transport replaced (renewal) or stopped (disconnect), one at a time
        self._retired: Transport | None = None  # the transport being replaced: its callbacks no longer count
        self._outcome = threading.Event()  # the first connection's outcome came
        self._outcome_lock = threading.Lock()
        self._error: BaseException | None = None
        self._trace = trace.on() and make.scheme == "wss"  # the HTTPS transport traces its requests itself
        self.transport: Transport = make(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.disconnect()

    @property
    def min_reconnect_delay(self) -> float:
        """The first wait before connecting again: the option's, and under AWS IoT Core's rules at least
        limits.CONNECT_INTERVAL, as AWS takes one CONNECT a second per client id (the transports
        then back off without jitter, which could bring it under that)."""
        delay = self.options.min_reconnect_delay
        return max(delay, limits.CONNECT_INTERVAL) if self.aws else delay

    @property
    def where(self) -> str:
        """host:port of the broker, for messages."""
        return f"{self.keys.host}:{self.keys.port}"

    @property
    def connected_once(self) -> bool:
        """Whether the first connection's outcome came (later attempts are reconnections)."""
        return self._outcome.is_set()

    # ---- what a transport tells its session ----------------------------------------------------------

    def first_outcome(self, error: BaseException | None) -> None:
        """The first connection was made (None) or failed (our error, or awscrt's)."""
        with self._outcome_lock:
            if not self._outcome.is_set():
                self._error = error
                self._outcome.set()

    def attempting(self) -> int:
        """A connection attempt began; its number since the last connection (counted here: a
        hastened reconnection spans transports)."""
        if self.retry is not None:
            self.retry.attempted()
        self._attempt += 1
        if not (self._outcome.is_set() and self._error is not None):  # else the first connection failed:
            # the command ends with why, awscrt's next try is not news
            self.on_state(State.RECONNECTING if self._outcome.is_set() else State.CONNECTING, self._attempt)
        return self._attempt

    @property
    def up_since(self) -> float | None:
        """When the current connection was made (time.monotonic()), while it lasts; None when away."""
        return self._up_since

    def connected(self) -> None:
        """A connection was made: no Nagle delay on small messages (crt/nodelay.py)."""
        self._attempt = 0
        self._up_since = time.monotonic()
        if self.retry is not None:
            self.retry.connected()
        set_nodelay(self.keys.port)
        self.on_state(State.CONNECTED, 0)

    def stopped(self) -> None:
        self.on_state(State.STOPPED, 0)

    def session_kept(self, seconds: int) -> None:
        """The broker keeps this persistent session `seconds` after a disconnection (MQTT 5's CONNACK,
        when it says so): fewer than --session-expiry asked is said once, as AWS IoT Core holds
        every session to the account's maximum (an hour unless raised)."""
        asked = self.options.session_expiry
        if self.options.session and seconds < asked and not self._kept_said:
            self._kept_said = True
            self._notice(f"broker {self.where} keeps session {shown(self.client_id)} {seconds} s after a "
                         f"disconnection, not the {asked} s asked (--session-expiry): messages sent while "
                         "you are away longer are not kept")

    def _notice(self, text: str) -> None:
        if self._on_notice is None:
            self._notices = [*self._notices[-9:], text]
        else:
            self._on_notice(text)

    def listen(self, on_notice: Callable[[str], None] | None) -> None:
        """Tell `on_notice` what the broker settled otherwise than asked, from now on and what it
        said before (the first CONNACK comes before the caller has the session)."""
        self._on_notice = on_notice
        notices, self._notices = self._notices, []
        if on_notice is not None:
            for text in notices:
                on_notice(text)

    def reconnect_failed(self, refused: bool, code: int = 0) -> None:
        """A reconnection attempt failed (the transport tries again); `refused`: the keys were, so
        the next attempt fetches new ones; `code`: its CONNACK's reason, if one came."""
        if refused:
            self.source.invalidate()
        if self.retry is not None and (plan := self.retry.failed(code)) is not None:
            self._follow(plan)

    def lost(self, code: int = 0, text: str | None = None) -> None:
        """The connection ended (the broker's DISCONNECT reason code, 0 if none or MQTT 3.1.1): made
        again by the transport, unless the code says the broker would refuse the same again."""
        self._up_since = None
        if self.closing or self.fatal is not None:
            return
        if code < 0x80 or code in TRANSIENT:
            self.on_state(State.RECONNECTING, 0)
            self._hasten(code)
            return
        if text:
            self.reasons.setdefault(code, text)
        error: IotNotifyError
        if code == SESSION_TAKEN_OVER:
            error = taken_over(self.client_id)
        elif code == NOT_AUTHORIZED:
            what = f"publish to {self.last_topic!r}" if self.last_topic else "do what it asked"
            error = Refused(f"broker {self.where} closed the connection: {self.refused_text(what)}")
        else:
            error = DeliveryError(f"broker {self.where} closed the connection: {reason(code, text)}"
                                  + (f" after a publish to {self.last_topic!r}" if self.last_topic else ""))
        if self.options.long_running and code != SESSION_TAKEN_OVER:
            # what one message did (a reply the keys may not send, a packet too large) must not end a
            # command that runs for days: say why, and let the transport connect again
            if self.on_dropped is not None:
                self.on_dropped(error)
            self.on_state(State.RECONNECTING, 0)
            self._hasten(code)
            return
        self.transport.halt()  # reconnecting would be refused the same way, or take the id back
        self.fail(error)

    def fail(self, error: IotNotifyError) -> None:
        """The session ended for a reason that reconnecting cannot mend (refused, taken over):
        remember why, and tell whoever watches the state ('failed')."""
        if self.fatal is None:
            self.fatal = error
            self.on_state(State.FAILED, 0)

    def keys_refused(self) -> bool:
        """The broker refused the keys of a request: whether sending it again with new keys may
        help (these came from the cache: forgotten now), or not (they were fetched just now)."""
        if self.source.fetches:
            return False
        self.source.invalidate()
        return True

    def current(self, transport: Transport) -> bool:
        """Whether `transport` is this session's (a replaced one's callbacks are ignored)."""
        return self.transport is transport and transport is not self._retired

    # ---- keys and credentials -------------------------------------------------------------------------

    @staticmethod
    def _weakly(session: weakref.ref[Session]) -> Callable[[], auth.AwsCredentials]:
        """signing_credentials for awscrt's delegate provider, holding the session weakly: the native
        provider holds its delegate until it is freed, which a reference back to the session (which
        holds the provider) would never let happen (each session dropped leaked 1.1 MB)."""
        def credentials() -> auth.AwsCredentials:
            this = session()
            if this is None:
                raise ConnectError("the session is closed")
            return this.signing_credentials()

        return credentials

    def signing_credentials(self) -> auth.AwsCredentials:
        """Called by awscrt at each (re)connection: keys in hand if fresh, else fetched anew."""
        from awscrt import auth

        try:
            keys = self.source.get()
        except IotNotifyError as e:
            self.key_error = e
            raise
        self.key_error = None
        if self.needs_new_id(keys):  # refused under this id: go on with a new transport, an id of the new keys
            refused = f"the new keys are for client id {keys.raw.get('clientId')}, not {self.client_id}"
            if not self._replacing.locked():  # (the thread takes the lock, or leaves it to one under way)
                threading.Thread(target=self._replace, args=(True,), name="iotnotify-renew", daemon=True).start()
            raise ConnectError(refused)  # this attempt fails; the renewal takes over
        return auth.AwsCredentials(keys.access_key, keys.secret_key, keys.session_token or None)

    def needs_new_id(self, keys: TemporaryKeys) -> bool:
        """Whether `keys` (fetched anew at a reconnection) are for another client id than this
        session's: our endpoint scopes each set of keys to a client id of its own, and AWS IoT Core
        would refuse the old id. A client id the user chose stays as it is; HTTPS has none."""
        if not self.transport.has_client_id or self.options.client_id or self.options.session:
            return False
        owner = keys.raw.get("clientId")
        return isinstance(owner, str) and bool(owner) and not self.client_id.startswith(owner + "-")

    # ---- a new transport in place of the current one -------------------------------------------------

    def _hasten(self, code: int) -> None:
        """The connection ended: under AWS's rules, follow retry.py's plan rather than awscrt's wait."""
        if self.retry is not None:
            self._follow(self.retry.lost(code))

    def _follow(self, plan: Plan, instead_of: Transport | None = None) -> None:
        """A new transport now in place of `instead_of` (the current one, whose client would try on
        its own schedule), started at the plan's time (from a thread of its own: not awscrt's, whose
        callback this may be)."""
        if self.closing or self.fatal is not None:
            return
        how = f" ({'backing off' if plan.patient else 'an attempt a second'})" if self.retry is not None else ""
        log.debug("connecting again with a new client in %.1f s%s", max(plan.at - time.monotonic(), 0), how)
        threading.Thread(target=self._replace, args=(False, plan.patient, plan.at, instead_of or self.transport),
                         name="iotnotify-reconnect", daemon=True).start()

    def _start_later(self, transport: Transport) -> None:
        """A replacement's planned time came: start it, if still the session's."""
        with self._swap:
            if not self.closing and self.fatal is None and self.current(transport):
                transport.start(persist=True)

    def _replace(self, new_keys: bool, patient: bool | None = None, start_at: float = 0.0,
                 instead_of: Transport | None = None) -> None:
        """A new transport in place of the current one: for a client id of new keys (`new_keys`), or
        for the same id (`patient`: its client backs off, else tries each interval; retry.py),
        started at once or at `start_at`; the old one stopped, and the QoS 1 messages it still held
        published again on the new one (at least once, as always: awscrt queues them until it
        connects). One at a time: while one is under way, another is not needed; nor once
        `instead_of` (the transport a plan was made for) was replaced already."""
        what = " as a client id of the new keys" if new_keys else ""
        if not self._replacing.acquire(blocking=False):
            return
        try:
            if self.fatal is not None or self.closing:
                return
            keys = self.source.get() if new_keys else self.keys
            with self._swap:
                if self.fatal is not None or self.closing or instead_of not in (None, self.transport):
                    return
                self._retired = old = self.transport  # its callbacks stop counting before anything changes
                self._up_since = None
                if new_keys:
                    self.keys, self.client_id = keys, client_id_for(keys)
                if self.retry is not None and patient is not None:
                    self.retry.patient = patient
                try:
                    new = self.transport = self._make(self)
                except Exception as e:  # no new transport: the session cannot go on
                    self._end(self._taken_over())
                    self.fail(ConnectError(f"cannot connect again{what}: {e}"))
                    return
                # only now: a message published while the new transport was made went to the old one
                # (publish() tracks it, then hands it to self.transport), so it is among these
                resend = self._taken_over()
                try:
                    old.halt()
                    if not new.start_blocks:  # returns at once: under the lock, so disconnect() stops it
                        self._start_at(new, start_at - time.monotonic())
                except Exception as e:
                    self._end(resend)
                    self.fail(ConnectError(f"cannot connect again{what}: {e}"))
                    return
            if new.start_blocks:
                new.start(persist=True)  # until connected, or the session closes
            with self._swap:
                go_on = self.fatal is None and not self.closing and self.current(new)
            if not go_on:
                self._end(resend)
                return
            for entry in resend:
                new.publish(*entry[:4], self._tracked(entry), entry[5])
        finally:
            self._replacing.release()

    def _start_at(self, transport: Transport, wait: float) -> None:
        """Start `transport` now, or in `wait` seconds (called under _swap)."""
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if wait <= 0:
            transport.start(persist=True)
            return
        self._retry_timer = threading.Timer(wait, self._start_later, args=(transport,))
        self._retry_timer.daemon = True
        self._retry_timer.start()

    def _taken_over(self) -> list[Entry]:
        """The messages the old transport holds, to publish again on the new one; from now on what
        is tracked is the new one's."""
        with self._inflight_lock:
            resend, self._inflight, self._handed = list(self._inflight.values()), {}, {}
        return resend

    @staticmethod
    def _end(entries: list[Entry]) -> None:
        """The messages that will not be published again: lost."""
        for entry in entries:
            entry[4](LOST)

    def signing_args(self) -> dict[str, object]:
        """The awsiotsdk builder arguments both MQTT transports share: where, who, and how to sign."""
        args = {"endpoint": self.keys.host, "port": self.keys.port, "region": self.keys.region,
                "credentials_provider": self.credentials, "client_id": self.client_id,
                "ca_filepath": self.options.ca_file,
                # the SDK's version in CONNECT's username is for AWS's SDK statistics; building it
                # imports importlib.metadata and reads the package's metadata on every cold send
                "enable_metrics_collection": False}
        if self.proxy is not None:
            args["http_proxy_options"] = crt_options(self.proxy)
        return args

    # ---- connecting ----------------------------------------------------------------------------------

    def connect(self) -> None:
        """Start the transport and wait for the first connection; ConnectError (or a subclass) if it fails."""
        self.transport.start()
        try:
            self._wait_connected()
        except BaseException:
            self.closing = True  # given up: nothing it hears from now on counts
            self.transport.halt()
            raise

    def _nodelay_early(self, limit: float) -> None:
        """While the first connection is being made, set TCP_NODELAY on its socket as soon as it
        exists: otherwise Nagle holds the WebSocket upgrade behind TLS's last small records until
        the server's delayed ACK."""
        deadline, pause = time.monotonic() + limit, NODELAY_POLL[0]
        while time.monotonic() < deadline and not set_nodelay(self.keys.port):
            if self._outcome.wait(pause):
                return
            pause = min(pause * 2, NODELAY_POLL[1])  # soon on loopback, then gently while a far broker answers

    def _wait_connected(self) -> None:
        """Wait for the first connection's outcome; diagnose a TLS failure early; raise ConnectError."""
        start, done = time.monotonic(), self._outcome
        self._nodelay_early(TLS_PROBE_AFTER)
        if not done.wait(max(TLS_PROBE_AFTER - (time.monotonic() - start), 0)):
            log.debug("no answer after %.1f s: probing TLS with %s", TLS_PROBE_AFTER, self.where)
            threading.Thread(target=self._probe, name="iotnotify-tls-probe", daemon=True).start()
            if not done.wait(max(self.options.connect_timeout - TLS_PROBE_AFTER, 0)):
                raise ConnectError(f"no answer from broker {self.where} within "
                                   f"{self.options.connect_timeout:g} s")
        error = self._error
        if error is not None:
            if self.key_error is not None:
                raise self.key_error
            if isinstance(error, IotNotifyError):  # already said in our words (a CONNACK's reason)
                raise error
            if self.proxy is not None:
                probe_tls(self.keys.host, self.keys.port, self.options.ca_file, proxy=self.proxy)  # names the proxy
            raise classify(error, self.where)

    def _probe(self) -> None:
        """A TLS handshake of our own (diagnose.probe_tls): its failure is the first connection's
        outcome unless the client's came first (then it was the network's moment, not the broker's)."""
        try:
            probe_tls(self.keys.host, self.keys.port, self.options.ca_file, proxy=self.proxy)
        except ConnectError as e:
            if self._outcome.is_set() and self._error is None:
                log.debug("TLS probe: %s; the connection was made meanwhile", e)
            self.first_outcome(e)

    # ---- what commands do ----------------------------------------------------------------------------

    def subscribe(self, filters: list[str], qos: int, timeout: float = 20.0, patient: bool | None = None,
                  given_up: Callable[[], IotNotifyError | None] = lambda: None) -> list[int]:
        """Subscribe; return the SUBACK's code for each filter (0 or 1 granted, 0x80 or more refused);
        the granted filters are subscribed again after a clean reconnection. DeliveryError after
        `timeout` s without a SUBACK, unless `patient` (default: options.long_running): then the
        wait goes on until the session ends or `given_up` names why its caller gave up
        (--max-reconnects), `timeout` counting only while connected (the SUBSCRIBE is asked again
        once the connection is back), and a connection up `timeout` s without answering (a network
        that stalls, which the keep-alive notices only later) is made anew. A SUBSCRIBE the
        connection took with it when the session replaced its transport (a reconnection it made,
        keys of a new client id, the above) is asked of the new one."""
        codes = _Asking(self, filters, qos, timeout, self.options.long_running if patient is None else patient,
                        given_up).codes()
        for topic_filter, code in zip(filters, codes, strict=False):
            log.debug("SUBACK %r: %s", topic_filter, f"granted QoS {code}" if code < 0x80 else reason(code))
        granted = [f for f, code in zip(filters, codes, strict=False) if code < 0x80]
        if granted:
            self.subscriptions.append((granted, qos))
        return codes

    def send_subscribe(self, filters: list[str], qos: int) -> tuple[Transport, Answer, float]:
        """A SUBSCRIBE on the current transport: the transport, its answer, when it was asked."""
        transport = self.transport
        log.debug("SUBSCRIBE %s (QoS %d)", ", ".join(map(repr, filters)), qos)
        return transport, transport.subscribe(filters, qos), time.monotonic()

    def wait_connected_again(self, given_up: Callable[[], IotNotifyError | None]) -> None:
        """Until a connection is up (looking each half second), the session ends, or the caller gave up."""
        while self._up_since is None and not self.closing:
            stop = self.fatal or given_up()
            if stop is not None:
                raise stop
            time.sleep(0.5)

    def ready_in(self, size: int) -> float:
        """Seconds until a message of `size` bytes may be published under AWS IoT Core's limits."""
        return self.pacer.delay(size) if self.pacer is not None else 0.0

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool, on_done: OnDone,
                properties: Properties | None = None) -> None:
        """Publish (waiting first if AWS's rate requires), with MQTT 5 `properties` if given (under
        AWS's rules a message expiry over 7 days is made 7 days, as AWS IoT Core caps it: "Any values
        higher than this will be adjusted to the maximum value"); `on_done` gets the message's Outcome."""
        if self.aws and properties is not None and (properties.message_expiry or 0) > limits.MAX_MESSAGE_EXPIRY:
            properties = replace(properties, message_expiry=limits.MAX_MESSAGE_EXPIRY)
        if self.pacer is not None:
            self.pacer.wait(len(payload) + len(topic) + 8)  # + fixed header, length, packet id
        self.last_topic = topic
        if self._trace:
            on_done = self._traced(topic, qos, on_done)
        if qos and self._track:
            on_done = self._tracked((topic, payload, qos, retain, on_done, properties))
        self.transport.publish(topic, payload, qos, retain, on_done, properties)

    def _traced(self, topic: str, qos: int, on_done: OnDone) -> OnDone:
        """`on_done`, after a line of trace for the message's acknowledgement (or its failure)."""
        def done(outcome: Outcome) -> None:
            if outcome.kind is Kind.LOST:
                log.debug("PUBLISH to %r: not acknowledged (the connection was lost)", topic)
            elif outcome.kind is Kind.CLOSED:
                log.debug("PUBLISH to %r: the broker closed the connection after it", topic)
            elif qos:
                log.debug("PUBACK for %r: %s", topic, reason(outcome.code, outcome.text))
            on_done(outcome)

        return done

    def _tracked(self, entry: Entry) -> OnDone:
        """Remember a QoS 1 message until it completes; its completion on a replaced transport is ignored."""
        token = next(self._tokens)
        with self._inflight_lock:
            self._inflight[token] = entry
            self._handed[token] = time.monotonic()
            if self._ack_timer is None:
                self._check_acks_in(ACK_DEADLINE)

        def done(outcome: Outcome) -> None:
            with self._inflight_lock:
                self._handed.pop(token, None)
                if self._inflight.pop(token, None) is None:
                    return  # published again on the transport that replaced this one
                if outcome.kind is not Kind.LOST:
                    self._last_ack = time.monotonic()
            entry[4](outcome)

        return done

    def _check_acks_in(self, seconds: float) -> None:
        """Look at the oldest unacknowledged message in `seconds` (under _inflight_lock)."""
        self._ack_timer = threading.Timer(seconds, self._check_acks)
        self._ack_timer.daemon = True
        self._ack_timer.start()

    def _check_acks(self) -> None:
        """ACK_DEADLINE without a PUBACK, on a connection up as long, while the oldest QoS 1 message
        handed over as long ago waits: the broker dropped what waits. Connect again (retry.py's
        plan, as for a lost connection), which publishes again what is unacknowledged; else look
        again when that time may be up. Nothing waiting: no timer until the next message."""
        with self._inflight_lock:
            self._ack_timer = None
            if not self._handed or self.closing or self.fatal is not None:
                return
            oldest = next(iter(self._handed.values()))  # tokens grow: the first is the oldest
            up, now, transport = self._up_since, time.monotonic(), self.transport
            since = max(oldest, self._last_ack, up if up is not None else now)
            if now - since < ACK_DEADLINE:
                self._check_acks_in(max(since + ACK_DEADLINE - now, 1.0))
                return
            waiting = len(self._handed)
        log.debug("no PUBACK for %.0f s while %d QoS 1 messages wait: the broker dropped them; connecting "
                  "again to publish them again", now - since, waiting)
        self._notice(f"no acknowledgement for {ACK_DEADLINE:g} s while {waiting} messages wait (a broker drops "
                     "publishes over its rate): connecting again to publish them again")
        self.connect_again(transport)

    def connect_again(self, transport: Transport) -> None:
        """A new transport in place of `transport`, connected but not answering, if still the
        session's: as for a lost connection (retry.py's plan under AWS's rules, else at once)."""
        if self.closing or self.fatal is not None or not self.current(transport):
            return
        self._follow(self.retry.lost() if self.retry is not None else Plan(0.0, patient=False), transport)

    def disconnect(self, timeout: float = 5.0) -> None:
        self.closing = True  # first: a renewal under way gives up
        with self._swap:
            transport = self.transport
            if self._retry_timer is not None:
                self._retry_timer.cancel()
        with self._inflight_lock:
            if self._ack_timer is not None:
                self._ack_timer.cancel()
        transport.stop(timeout)
        self._end(self._taken_over())  # what it did not settle by now (one never started settles nothing)

    # ---- refusals in words ---------------------------------------------------------------------------

    def refused_text(self, action: str, code: int = NOT_AUTHORIZED, text: str | None = None) -> str:
        """'0x87 not authorized to publish to 'x' (the keys allow topic y)': the end of a refusal,
        with the broker's reason string if it sent one."""
        said = text or self.reasons.get(code)
        return (f"0x{code:02X} not authorized to {action}{describe(self.keys)}"
                + (f"; the broker said: {shown(said)}" if said else ""))

    def refused_connect_text(self, text: str | None = None) -> str:
        """'0x87 not authorized to connect as client id 'x' (the keys are for client id y...)'."""
        said = f"; the broker said: {shown(text)}" if text else ""
        return f"0x87 not authorized to connect as client id {self.client_id!r}{describe_client(self.keys)}{said}"

    def refusal(self, topic_filter: str, code: int) -> IotNotifyError:
        """The error for a subscription the broker refused: Refused if not authorized (in MQTT 3.1.1,
        where 0x80 is all a SUBACK can say, AWS IoT Core's usual reason), else DeliveryError."""
        if code == NOT_AUTHORIZED or (code == MQTT311_FAILURE and self.options.protocol == MqttVersion.V311):
            hedge = " (MQTT 3.1.1 cannot say why; AWS IoT Core refuses so when the keys do not allow it)" \
                if code == MQTT311_FAILURE else ""
            return Refused("broker refused the subscription: "
                           + self.refused_text(f"subscribe to {topic_filter!r}", code) + hedge)
        return DeliveryError(f"broker refused the subscription to {topic_filter!r}: {reason(code)}")


class _Asking:
    """One SUBSCRIBE until its SUBACK (Session.subscribe): on which transport, asked when, waited
    for until when."""

    def __init__(self, session: Session, filters: list[str], qos: int, timeout: float, patient: bool,
                 given_up: Callable[[], IotNotifyError | None]) -> None:
        self.session, self.filters, self.qos, self.timeout = session, filters, qos, timeout
        self.patient, self.given_up = patient, given_up
        self._ask()

    def _ask(self) -> None:
        self.transport, self.answer, self.asked = self.session.send_subscribe(self.filters, self.qos)
        self.deadline = self.asked + self.timeout

    def codes(self) -> list[int]:
        """The SUBACK's codes, waited for in half-seconds (a look at the session between)."""
        session = self.session
        while True:
            try:
                return self.answer(min(max(self.deadline - time.monotonic(), 0.0), 0.5))
            except TimeoutError:
                self._not_yet()
            except DeliveryError as e:
                self._failed(e)
            stop = session.fatal or self.given_up()
            if stop is not None:
                raise stop

    def _not_yet(self) -> None:
        session, now, up = self.session, time.monotonic(), self.session.up_since
        if session.transport is not self.transport:  # replaced: the old client's SUBSCRIBE may never end
            self._ask()
        elif now < self.deadline:
            pass
        elif not self.patient:
            raise DeliveryError(f"broker {session.where} did not acknowledge the subscription within "
                                f"{self.timeout:g} s") from None
        elif up is None or now - up < self.timeout:  # away, or back only lately: its time starts then
            self.deadline = (up if up is not None else now) + self.timeout
        else:
            log.debug("no SUBACK within %g s on a connection that is up: connecting again", self.timeout)
            self.deadline = now + self.timeout
            session.connect_again(self.transport)

    def _failed(self, error: DeliveryError) -> None:
        session = self.session
        if session.closing or session.fatal is not None:
            raise error
        if session.transport is self.transport:  # the same client (MQTT 3.1.1 cancels what a lost connection had)
            up = session.up_since
            if not self.patient or (up is not None and up <= self.asked):  # up all along: a failure of its own
                raise error
            session.wait_connected_again(self.given_up)
        log.debug("SUBSCRIBE: %s; asking the new connection", error)
        self._ask()
