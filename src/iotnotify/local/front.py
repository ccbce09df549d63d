"""The local broker's TLS WebSocket front: wss on 127.0.0.1, relayed to Mosquitto (local/broker_link.py).

Why not Mosquitto's own websockets listener: in Mosquitto 2.0.11 (Debian 12) it ignores the bind
address and listens on every interface (eclipse-mosquitto/mosquitto#2085, #3045), which would put an
anonymous broker on the network; its libwebsockets also adds 100-300 ms to every connection. The front
binds to loopback only and relays bytes: MQTT itself is Mosquitto's. Like AWS IoT's gateway, it checks
the SigV4 signature of each WebSocket upgrade (local/sigv4.py) and refuses unknown, tampered or
expired keys with HTTP 403; the connection's Gateway (local/gateway.py), if the stack gives it one,
then holds it to AWS IoT Core's rules. On the same port, as AWS IoT Core's data endpoint, it
answers HTTPS publish requests (POST /topics/...: local/https_publish.py).
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State
from websockets.typing import Subprotocol

from iotnotify.errors import LocalStackError
from iotnotify.local.broker_link import BrokerAddress, BrokerLink, connect_broker, exchange
from iotnotify.local.gateway import Gateway
from iotnotify.local.packets import Malformed
from iotnotify.local.sigv4 import UpgradeRefused
from iotnotify.local.tls import TlsFiles

if TYPE_CHECKING:
    from websockets.http11 import Request, Response

    from iotnotify.local.https_publish import Answer

MQTT_PATH = "/mqtt"
FORGET_TIMEOUT = 5.0  # s for the broker to forget an expired session
MAX_MESSAGE = 2 * 1024 * 1024  # bytes per WebSocket message: AWS IoT Core's packets are at most 128 KB


Gateways = weakref.WeakKeyDictionary[ServerConnection, "Gateway | None"]
Holders = dict[str, Callable[[], Awaitable[None]]]  # client id -> ends the connection that holds it
Publish = Callable[[str, str, Mapping[str, str], bytes], Awaitable["Answer"]]
"""(method, target, headers, body) -> the answer to an HTTPS publish request."""
MAX_HEAD = 16 * 1024  # bytes of an HTTP request's line and headers
MAX_BODY = 256 * 1024  # bytes of a request body read at all (AWS IoT Core's payloads are at most 128 KB)
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large", 503: "Service Unavailable"}


class FrontConnection(ServerConnection):
    """websockets' server connection (its documented `create_connection` hook), which hands a
    connection that starts with a request other than GET to `publish` instead: plain HTTP/1.1
    requests with a Content-Length body, answered in turn on a kept-alive connection (websockets
    itself takes no request body). websockets' opening timeout ends an idle one. Once relayed, the
    broker's bytes are written with `write_now`, and reading them pauses while this side's buffer
    is full (`follow`)."""

    publish: Publish | None = None  # set on a subclass per front

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start = b""
        self._decided = self.publish is None
        self._http: asyncio.StreamReader | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._broker: BrokerLink | None = None

    def follow(self, broker: BrokerLink | None) -> None:
        """Hold reading from `broker` while this connection's writes wait (None: stop)."""
        self._broker = broker
        if broker is not None and self.paused:
            broker.hold("client")

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._broker is not None:
            self._broker.hold("client")

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._broker is not None:
            self._broker.release("client")

    def write_now(self, data: bytes) -> None:
        """`data` as one binary frame, written now (websockets' `send` costs a task switch and an
        await per call); nothing once the connection is closing."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_binary(data)
            self.send_data()

    def data_received(self, data: bytes) -> None:
        if self._http is not None:
            self._http.feed_data(data)
            return
        if not self._decided:
            self._start += data
            if b" " not in self._start[:8] and len(self._start) < 8:
                return  # the method is not all here yet
            data, self._decided = self._start, True
            if not data.startswith(b"GET "):
                self._http = asyncio.StreamReader(limit=MAX_HEAD)
                self._http.feed_data(data)
                self._http_task = asyncio.ensure_future(self._serve_http(self._http))
                return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._http is not None:
            self._http.feed_eof()
        super().connection_lost(exc)

    async def _serve_http(self, reader: asyncio.StreamReader) -> None:  # noqa: PLR0911 - an end per failure
        """Answer each request in turn until the client closes, asks to, or sends one not understood."""
        if self.publish is None:
            return
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                request = _parse_head(head)
                if request is None:
                    self._answer(400, b'{"message": "malformed request"}', close=True)
                    return
                method, target, headers = request
                length = headers.get("content-length", "")
                if not (length.isascii() and length.isdecimal()):
                    self._answer(411, b'{"message": "a Content-Length is needed"}', close=True)
                    return
                if int(length) > MAX_BODY:
                    self._answer(413, b'{"message": "request body too large"}', close=True)
                    return
                try:
                    body = await reader.readexactly(int(length))
                except asyncio.IncompleteReadError:
                    return
                answer = await self.publish(method, target, headers, body)
                close = headers.get("connection", "").lower() == "close"
                self._answer(answer.status, answer.body, close)
                if close:
                    return
        finally:
            self.transport.close()

    def _answer(self, status: int, body: bytes, close: bool) -> None:
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nServer: iotnotify-local\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n")
        self.transport.write(head.encode() + body)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(method, target, headers with lower-case names) of an HTTP/1.1 request head, or None."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not target.startswith("/"):
        return None
    return method, target, headers


GC_EVERY = 30.0  # s at least between two full collections made when a connection ends
_collected = [0.0]


def collect_garbage() -> None:
    """A full collection, at most every GC_EVERY seconds, when a connection ended. websockets keeps
    an ended connection's exceptions, whose tracebacks hold it, and through it its TLS buffers (some
    300 KB), in reference cycles that only a full collection frees; and Python makes one only after
    many objects, which a stack relaying messages rarely allocates: in a soak (clients reconnecting
    every minute) the garbage grew the stack's RSS some 2 MB a minute for as long as it ran."""
    now = time.monotonic()
    if now - _collected[0] >= GC_EVERY:
        _collected[0] = now
        gc.collect()


class Relay:
    """One WebSocket connection piped to a new connection to the broker, both ways, through the
    connection's Gateway if it has one."""

    def __init__(self, websocket: FrontConnection, gateway: Gateway | None, holders: Holders) -> None:
        self.websocket = websocket
        self.gateway = gateway
        self.holders = holders
        self.client_id: str | None = None
        self.broker: BrokerLink | None = None
        self.address: BrokerAddress | None = None

    async def run(self, broker: BrokerAddress) -> None:
        """Relay until either side ends; then close both."""
        self.address = broker
        try:
            link = await connect_broker(broker, self._from_broker)
        except OSError:
            await self.websocket.close(1011, "broker unavailable")
            return
        self.broker = link
        self.websocket.follow(link)
        upstream = asyncio.ensure_future(self._upstream(link))
        try:
            await asyncio.wait([upstream, link.ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            by_broker = link.ended.done() and not upstream.done()  # the broker's side ended first
            if self.client_id is not None and self.holders.get(self.client_id) == self.take_over:
                del self.holders[self.client_id]
            upstream.cancel()
            await asyncio.gather(upstream, return_exceptions=True)
            self.websocket.follow(None)
            link.close()
            self.broker = None  # (the link's callback is this relay's: no cycle between them)
            collect_garbage()
            if self.gateway is not None:  # no WebSocket closing handshake, as AWS IoT Core
                self.gateway.note_throttled()
                self.gateway.ended(by_broker)
                self.websocket.transport.close()
            await self.websocket.close()

    async def take_over(self) -> None:
        """Another connection took this one's client id: end it as AWS IoT Core does."""
        goodbye = self.gateway.taken_over() if self.gateway is not None else b""
        if goodbye:
            await self.websocket.send(goodbye)
        self.websocket.transport.close()

    async def _upstream(self, broker: BrokerLink) -> None:
        async for message in self.websocket:
            data = message if isinstance(message, bytes) else message.encode()
            if self.gateway is None:
                broker.write(data)
                await broker.drain()
            elif not await self._through_gateway(self.gateway, data, broker):
                return

    async def _through_gateway(self, gateway: Gateway, data: bytes, broker: BrokerLink) -> bool:
        """Pass the client's bytes through its Gateway; False once the connection is to end."""
        verdict = gateway.from_client(data)
        if verdict.connected_as is not None:  # one connection per client id: the older one ends
            self.client_id = verdict.connected_as
            older = self.holders.get(self.client_id)
            self.holders[self.client_id] = self.take_over
            if older is not None:
                await older()
        if verdict.forget is not None and self.address is not None:  # an expired stored session
            try:
                await asyncio.wait_for(exchange(self.address, verdict.forget), FORGET_TIMEOUT)
            except (OSError, TimeoutError, Malformed):
                return False  # the broker is not there: nor will it take the CONNECT
        if verdict.to_broker:
            broker.write(verdict.to_broker)
            await broker.drain()
        if verdict.to_client:
            await self.websocket.send(verdict.to_client)
        if verdict.close:  # as AWS IoT Core: TLS close_notify and FIN now, no WebSocket closing handshake
            self.websocket.transport.close()
            return False
        if verdict.pause:
            await asyncio.sleep(verdict.pause)
        return True

    def _from_broker(self, data: bytes) -> None:
        """The broker's bytes, in the event loop's callback that read them: through the Gateway,
        then to the client as one WebSocket frame, written at once (`FrontConnection.write_now`)."""
        if self.gateway is not None:
            try:
                verdict = self.gateway.from_broker(data)
            except Malformed:  # not MQTT as the Gateway knows it: the connection ends
                if self.broker is not None:
                    self.broker.close()
                return
            if verdict.to_broker and self.broker is not None:
                self.broker.write(verdict.to_broker)  # PUBACKs for messages the client may not receive
            if verdict.to_client:
                self.websocket.write_now(bytes(verdict.to_client))
            if verdict.close:  # the connection outlived AWS's limit: closed as AWS closes it, no handshake
                self.websocket.transport.close()
                return
            if verdict.pause and self.broker is not None:  # over AWS's throughput to the client: read later
                self.broker.hold("throughput")
                asyncio.get_running_loop().call_later(verdict.pause, self.broker.release, "throughput")
        elif data:
            self.websocket.write_now(data)


Admit = Callable[[str, Mapping[str, str]], "Gateway | None"]
"""(path, headers) -> the connection's Gateway, or None to relay it as it is; UpgradeRefused: 403."""


class WebSocketFront:
    """wss://127.0.0.1:port/mqtt for MQTT clients, served from a background thread, and with
    `plain_port` the same without TLS, ws://127.0.0.1:plain_port/mqtt, for the browser page (no
    browser trusts the local CA; on loopback TLS protects nothing the machine does not already see,
    and the signature check, the origin check and AWS's rules are the same). Without `admit`, every
    upgrade is relayed as it is (tests' brokers that restart at will)."""

    def __init__(self, port: int, broker: BrokerAddress, tls: TlsFiles, admit: Admit | None = None,
                 plain_port: int | None = None, publish: Publish | None = None,
                 background: tuple[Callable[[], Awaitable[None]], ...] = ()) -> None:
        self.port = port
        self.plain_port = plain_port
        self.admit = admit
        self.publish = publish  # answers HTTPS publish requests (None: only WebSocket upgrades)
        self.background = background  # run on the front's loop while it serves (the lifecycle events)
        self.broker = broker  # where relays connect: Mosquitto's Unix socket, or its TCP port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(tls.cert_file, tls.key_file)
        self._thread = threading.Thread(target=self._run, name="wss-front", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> None:
        """Listen on 127.0.0.1:port; raise LocalStackError if that fails."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise LocalStackError(f"cannot serve {self._error}")

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        holders: Holders = {}  # used on this loop only
        # connection -> its Gateway, from the upgrade to the relay (weak: a handshake that fails after
        # the upgrade was admitted never reaches the relay, and must not leave its entry behind)
        gateways: Gateways = weakref.WeakKeyDictionary()
        listeners = [(self.port, self.context, "wss")] + (
            [(self.plain_port, None, "ws")] if self.plain_port is not None else [])
        servers = []
        connection = type("Connection", (FrontConnection,), {"publish": staticmethod(self.publish)}) \
            if self.publish is not None else FrontConnection
        for port, context, scheme in listeners:
            try:
                servers.append(await serve(
                    lambda ws: Relay(cast(FrontConnection, ws), gateways.pop(ws, None), holders).run(self.broker),
                    "127.0.0.1", port, ssl=context, subprotocols=[Subprotocol("mqtt"), Subprotocol("mqttv3.1")],
                    process_request=self._checker(gateways), compression=None,
                    max_size=MAX_MESSAGE, ping_interval=None, close_timeout=1, server_header="iotnotify-local",
                    create_connection=connection,
                ))
            except OSError as e:
                for server in servers:
                    server.close()
                self._error = RuntimeError(f"{scheme} on port {port}: {e}")
                self._ready.set()
                return
        self._ready.set()
        tasks = [asyncio.ensure_future(work()) for work in self.background]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            server.close(close_connections=True)
            await server.wait_closed()

    def _checker(self, gateways: Gateways) -> Callable[[ServerConnection, Request], Response | None]:
        """Websockets' process_request: 404 off the MQTT path; 403 when `admit` refuses the upgrade;
        else the Gateway `admit` gives the connection goes into `gateways`."""

        def process_request(connection: ServerConnection, request: Request) -> Response | None:
            if request.path.split("?", 1)[0] != MQTT_PATH:
                return connection.respond(404, f"use wss://host:port{MQTT_PATH}\n")
            if self.admit is not None:
                try:
                    gateways[connection] = self.admit(request.path, dict(request.headers.raw_items()))
                except UpgradeRefused as e:
                    return connection.respond(403, f"forbidden: {e}\n")
            return None

        return process_request

    def stop(self) -> None:
        """Close the listener and every connection, and wait for the thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
