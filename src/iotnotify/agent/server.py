"""The agent: keeps one connection open for a set of settings and publishes what `send`s in other
processes hand it over its Unix socket, each with `send`'s own checks and outcome (send.deliver).

Only this user's processes get in: the socket is 0600 in a 0700 folder, and each caller's uid is
checked again (SO_PEERCRED). Its connection is replaced, with fresh keys, before the keys expire;
the old one is closed once the sends using it end.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from iotnotify import times
from iotnotify.agent import owned
from iotnotify.agent.wire import (
    ACKED,
    END,
    HEADER,
    MESSAGE,
    READY,
    REJECTED,
    STATUS,
    STOP,
    VERDICT,
    VERSION,
    Reader,
    frame,
    value,
    value_frame,
)
from iotnotify.errors import ConfigError, IotNotifyError, UsageError
from iotnotify.keys import KeySource
from iotnotify.mqtt import ConnectOptions, Session, open_session
from iotnotify.outgoing import Outgoing
from iotnotify.properties import from_record
from iotnotify.send import Publisher, check_before_sending, deliver
from iotnotify.topics import AWS_MAX_PAYLOAD_BYTES, MQTT_MAX_PAYLOAD_BYTES

log = logging.getLogger("iotnotify.wire")
TICK = 1.0  # s between looks at a connection the broker ended for good (or none), to make another
LONGEST_LOOK = 60.0  # s between looks otherwise: at the keys' freshness and the idle time, when due
FIRST_FRAME = 10.0  # s for a caller to say what it wants; one that says nothing is dropped
FRAME_TIME = 10.0  # s for each read once a frame has begun (its header read, its body still coming)
CLOSE_GRACE = 5.0  # s the sends under way have to finish when the agent stops, before they are ended


class ClientGone(Exception):
    """The sending process went away before its END (Ctrl-C, killed)."""


class Agent:
    """One connection for `identity`'s settings, lent to the `send`s that connect to `path`."""

    def __init__(self, source: KeySource, options: ConnectOptions, identity: str, path: str,
                 idle: float | None = None, about: dict[str, Any] | None = None) -> None:
        self.source, self.options, self.identity, self.path, self.idle = source, options, identity, path, idle
        self.about = about or {}  # shown by `agent status`: the profile, the keys endpoint
        self.started = time.time()
        self.last_used = time.monotonic()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.renewing = threading.Lock()  # one replacement of the connection at a time
        self.users: dict[int, int] = {}  # id(connection) -> sends using it
        self.sessions: set[threading.Thread] = set()
        self.callers: dict[threading.Thread, socket.socket] = {}  # each session's socket, to end it at close
        self.served = self.delivered = 0
        self.connection: Session | None = None
        self.listener: socket.socket | None = None

    def start(self) -> None:
        """Connect, then listen (raises our errors: nothing listens if the broker cannot be reached)."""
        self.connection = open_session(self.source, self.options)
        try:
            self.listener = listen(self.path)
        except BaseException:
            self.connection.disconnect()
            raise

    def serve(self) -> None:
        """Serve until `agent stop`, the idle time, or Ctrl-C; then finish the sends under way and close."""
        if self.listener is None:
            raise RuntimeError("Agent.serve() before Agent.start()")
        due = time.monotonic()
        try:
            while not self.stopping.is_set():
                if time.monotonic() >= due:  # also when callers keep accept() from timing out
                    self._tick()
                    due = time.monotonic() + self._next_look()
                    continue
                self.listener.settimeout(max(due - time.monotonic(), 0.01))
                try:
                    sock, _ = self.listener.accept()
                except TimeoutError:
                    continue
                if self.stopping.is_set():  # (`agent stop`'s wake-up call, or a caller too late)
                    sock.close()
                    break
                thread = threading.Thread(target=self._session, args=(sock,), name="iotnotify-agent", daemon=True)
                with self.lock:
                    self.sessions.add(thread)
                thread.start()
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening, let the sends under way end, disconnect."""
        if self.listener is not None:
            self.listener.close()
            _unlink(self.path)
            self.listener = None
        until = time.monotonic() + CLOSE_GRACE
        for thread in list(self.sessions):  # the sends under way finish...
            thread.join(max(until - time.monotonic(), 0))
        with self.lock:
            lingering = list(self.callers.values())
        for sock in lingering:  # ...but one whose caller stalls (a stream, or a peer saying nothing) is ended
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        for thread in list(self.sessions):
            thread.join(CLOSE_GRACE)
        if self.connection is not None:
            self.connection.disconnect()

    def _next_look(self) -> float:
        """Seconds until the next look is needed: soon for a connection the broker ended for good,
        else when the keys stop being fresh or the idle time ends (at most LONGEST_LOOK: an idle
        agent wakes once a minute, not once a second; bench/idle.py)."""
        connection = self.connection
        if connection is None or connection.fatal is not None:
            return TICK
        until = [LONGEST_LOOK, connection.keys.fresh_for()]
        with self.lock:
            busy = any(self.users.values())
        if self.idle is not None and not busy:  # (a send under way keeps it: its end is a use)
            until.append(self.last_used + self.idle - time.monotonic())
        return max(min(until), TICK)  # overdue (keys the endpoint cannot renew now): once a second, as before

    def _wake(self) -> None:
        """Make the listener's accept() return at once (`agent stop` from a caller's thread)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as poke:
                poke.settimeout(1)
                poke.connect(self.path)
        except OSError:
            pass  # the listener is gone already

    def _tick(self) -> None:
        """Between callers: replace a connection whose keys near their end; stop when idle too long."""
        with self.lock:
            busy = any(self.users.values())  # sends under way (a status or a stop is not a use)
        if self.idle is not None and not busy and time.monotonic() - self.last_used > self.idle:
            log.debug("agent: idle for %g s: stopping", self.idle)
            self.stopping.set()
            return
        connection = self.connection
        if connection is not None and (connection.fatal is not None or not connection.keys.fresh()):
            self._renew(connection)

    def _renew(self, old: Session) -> None:
        """Replace `old` unless another thread did meanwhile (a send's, or the listener's look)."""
        with self.renewing:
            if self.connection is old:
                self._replace(old)

    def _replace(self, old: Session) -> None:
        """A new connection with fresh keys for new sends; `old` is closed once its sends end."""
        log.debug("agent: keys expire in %.0f s: connecting with new keys", old.keys.expires_in())
        try:
            self.source.invalidate()
            new = open_session(self.source, self.options)
        except IotNotifyError as e:  # try again at the next tick; the old connection serves meanwhile
            log.debug("agent: could not connect with new keys: %s", e)
            return
        with self.lock:
            self.connection = new
        threading.Thread(target=self._retire, args=(old,), daemon=True).start()

    def _retire(self, old: Session) -> None:
        while True:
            with self.lock:
                if not self.users.get(id(old)):
                    self.users.pop(id(old), None)
                    break
            time.sleep(TICK)
        old.disconnect()

    def _acks(self, tell: Callable[[bytes], None]) -> Callable[[int], None]:
        """What tells the caller, and counts, each message the broker acknowledged."""
        def acked(position: int) -> None:
            with self.lock:
                self.delivered += 1
            tell(frame(ACKED, position.to_bytes(4, "big")))

        return acked

    def status(self) -> dict[str, Any]:
        """What `agent status` shows (never a secret)."""
        connection = self.connection
        if connection is None:
            return {**self.about, "pid": os.getpid(), "socket": self.path, "connected": False}
        return {**self.about, "pid": os.getpid(), "socket": self.path, "broker": connection.where,
                "client_id": connection.client_id, "protocol": str(self.options.protocol),
                "started": times.iso(self.started), "keys_expire": times.iso(connection.keys.expiration),
                "idle_exit": self.idle, "sends": self.served, "delivered": self.delivered,
                "connected": connection.fatal is None}

    def _session(self, sock: socket.socket) -> None:
        """One caller: a status, a stop, or a send."""
        try:
            with sock:
                if not same_user(sock):
                    return
                with self.lock:
                    self.callers[threading.current_thread()] = sock
                connection = self.connection
                aws = connection is not None and connection.aws
                reader = Reader(sock, AWS_MAX_PAYLOAD_BYTES if aws else MQTT_MAX_PAYLOAD_BYTES, FRAME_TIME)
                reader.idle_timeout = FIRST_FRAME
                first = reader.next()
                reader.idle_timeout = None  # a stream's lines may come slowly (tail -F | send -l)
                if first is None:
                    return
                kind, body = first
                if kind == STATUS:
                    sock.sendall(value_frame(VERDICT, self.status()))
                elif kind == STOP:
                    self.stopping.set()
                    try:
                        sock.sendall(value_frame(VERDICT, {"stopping": os.getpid()}))
                    finally:  # (a caller gone before the answer stops it all the same, at once)
                        self._wake()
                elif kind == HEADER:
                    self._send(sock, reader, value(body))
        except (OSError, ClientGone, ValueError, IotNotifyError) as e:
            log.debug("agent: a caller went away: %s", e)
        finally:
            with self.lock:
                self.sessions.discard(threading.current_thread())
                self.callers.pop(threading.current_thread(), None)

    def _send(self, sock: socket.socket, reader: Reader, header: dict[str, Any]) -> None:
        """A send: check as `send` checks, publish as it publishes, tell the caller each
        acknowledgement and, at the end, the outcome `send` would have had."""
        if header.get("v") != VERSION or header.get("identity") != self.identity:
            sock.sendall(value_frame(VERDICT, {"mismatch": True}))
            return
        lock = threading.Lock()

        def tell(data: bytes) -> None:
            with lock:
                try:
                    sock.sendall(data)
                except OSError:
                    pass  # the caller went away; what is in flight still goes to the broker

        try:
            outgoing = _checked(header)
        except UsageError as e:  # a header no `send` of ours makes: said, not a traceback in the log
            tell(_verdict(e, before=True))
            return
        cut: dict[int, int] = {}  # position -> the real size of a message over the broker's limit

        def rejected(position: int, error: IotNotifyError) -> None:
            if position in cut:  # the agent kept only the first bytes of it: say its real size
                error = UsageError(f"payload of {cut[position]} bytes is over the broker's limit")
            tell(value_frame(REJECTED, {"position": position, "message": str(error)}))

        outgoing.payloads = list(_payloads(reader, cut)) if header.get("whole") else _payloads(reader, cut)
        current = self.connection
        if current is not None and current.fatal is not None:  # ended for good since the last look: now
            self._renew(current)
        with self.lock:
            connection = self.connection
            if connection is None:
                return
            self.users[id(connection)] = self.users.get(id(connection), 0) + 1
            self.served += 1
        try:
            try:
                check_before_sending(self.source, outgoing.topic, outgoing.payloads if outgoing.whole else [],
                                     outgoing.properties, outgoing.records)
            except IotNotifyError as e:
                tell(_verdict(e, before=True))
                return
            tell(frame(READY))
            publisher = Publisher(connection, outgoing.topic or "", outgoing.qos, outgoing.retain,
                                  properties=outgoing.properties, on_acked=self._acks(tell), ids=outgoing.ids)
            try:
                result = deliver(publisher, self.source, outgoing, rejected)
            except IotNotifyError as e:
                tell(_verdict(e))
            else:
                tell(value_frame(VERDICT, {"sent": result.sent, "acked": result.acked}))
        finally:
            with self.lock:
                self.users[id(connection)] -= 1
                self.last_used = time.monotonic()  # a send, not a status, keeps the agent from its idle exit


def _verdict(error: IotNotifyError, before: bool = False) -> bytes:
    return value_frame(VERDICT, {"error": type(error).__name__, "message": str(error), "before": before})


def _payloads(reader: Reader, cut: dict[int, int]) -> Iterator[bytes]:
    """The caller's messages until its END; ClientGone if it leaves first. A message over the
    broker's limit comes cut short (its real size in `cut`, by position): the limit refuses it."""
    position = 0
    while (got := reader.next()) is not None:
        kind, body = got
        if kind == END:
            return
        if kind == MESSAGE:
            position += 1
            if reader.cut is not None:
                cut[position] = reader.cut
            yield body
    raise ClientGone("the sender closed its connection before the end of its input")


def _checked(header: dict[str, Any]) -> Outgoing:
    """The send its HEADER asks for (the messages follow it); UsageError for a field of the wrong
    kind (only a process that is not our `send` makes one)."""
    topic, qos, retain, timeout = header.get("topic"), header.get("qos", 1), header.get("retain", False), \
        header.get("timeout", 30.0)
    if topic is not None and not isinstance(topic, str):
        raise UsageError("the send's topic is not a string")
    if qos not in (0, 1) or isinstance(qos, bool):
        raise UsageError(f"the send's QoS {qos!r} is not 0 or 1")
    if not isinstance(retain, bool):
        raise UsageError("the send's retain flag is not true or false")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= times.MAX_SECONDS:
        raise UsageError(f"the send's timeout {timeout!r} is not 0 to {times.MAX_SECONDS:g} seconds")
    given = header.get("properties")
    if given is not None and not isinstance(given, dict):
        raise UsageError("the send's properties are not a table")
    return Outgoing(topic, (), qos, retain, float(timeout), properties=from_record(given) if given else None,
                    records=bool(header.get("records")), ids=header.get("ids") is not False)


def same_user(sock: socket.socket) -> bool:
    """Whether the process at the other end runs as this user (Linux tells; elsewhere the 0600
    socket in a 0700 folder is the guard)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.geteuid())


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def listen(path: str) -> socket.socket:
    """A Unix socket at `path`, mode 0600; a stale socket there (its agent died) is removed, a live
    one is UsageError."""
    if owned(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            _unlink(path)
        else:
            probe.close()
            raise UsageError(f"an agent for these settings is already running ({path})")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mask = os.umask(0o177)
    try:
        listener.bind(path)
    except OSError as e:
        listener.close()
        raise ConfigError(f"cannot listen on {path}: {e.strerror or e}") from None
    finally:
        os.umask(mask)
    listener.listen(64)
    return listener
