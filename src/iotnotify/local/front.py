"""The local broker's TLS WebSocket front: wss on 127.0.0.1, relayed to Mosquitto's plain MQTT listener.

Why not Mosquitto's own websockets listener: in Mosquitto 2.0.11 (Debian 12) it ignores the bind
address and listens on every interface (eclipse-mosquitto/mosquitto#2085, #3045), which would put an
anonymous broker on the network; its libwebsockets also adds 100-300 ms to every connection. The front
binds to loopback only and relays bytes: MQTT itself is Mosquitto's. Like AWS IoT's gateway, it checks
the SigV4 signature of each WebSocket upgrade (local/sigv4.py) and refuses unknown, tampered or
expired keys with HTTP 403; the connection's Gateway (local/gateway.py), if the stack gives it one,
then holds it to AWS IoT Core's rules.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Mapping

from iotnotify.errors import LocalStackError
from iotnotify.local.gateway import Gateway
from iotnotify.local.sigv4 import UpgradeRefused
from iotnotify.local.tls import TlsFiles

MQTT_PATH = "/mqtt"
READ_SIZE = 256 * 1024
MAX_MESSAGE = 2 * 1024 * 1024  # bytes per WebSocket message: AWS IoT Core's packets are at most 128 KB


Holders = dict[str, Callable[[], Awaitable[None]]]  # client id -> ends the connection that holds it


async def _relay(websocket, broker_port: int, holders: Holders) -> None:  # type: ignore[no-untyped-def]
    """Pipe one WebSocket connection to a new TCP connection to the broker, both ways, through the
    connection's Gateway if it has one."""
    gateway: Gateway | None = getattr(websocket, "gateway", None)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker_port)
    except OSError:
        await websocket.close(1011, "broker unavailable")
        return
    client_id: str | None = None

    async def take_over() -> None:
        """Another connection took this one's client id: end it as AWS IoT Core does."""
        assert gateway is not None
        goodbye = gateway.taken_over()
        if goodbye:
            await websocket.send(goodbye)
        websocket.transport.close()

    async def upstream() -> None:
        nonlocal client_id
        async for message in websocket:
            data = message if isinstance(message, bytes) else message.encode()
            if gateway is None:
                writer.write(data)
                await writer.drain()
                continue
            verdict = gateway.from_client(data)
            if verdict.connected_as is not None:  # one connection per client id: the older one ends
                client_id = verdict.connected_as
                older = holders.get(client_id)
                holders[client_id] = take_over
                if older is not None:
                    await older()
            if verdict.to_broker:
                writer.write(verdict.to_broker)
                await writer.drain()
            if verdict.to_client:
                await websocket.send(verdict.to_client)
            if verdict.close:  # as AWS IoT Core: TLS close_notify and FIN now, no WebSocket closing handshake
                websocket.transport.close()
                return
            if verdict.pause:
                await asyncio.sleep(verdict.pause)

    async def downstream() -> None:
        while data := await reader.read(READ_SIZE):
            if gateway is None:
                await websocket.send(data)
                continue
            verdict = gateway.from_broker(data)
            if verdict.to_broker:
                writer.write(verdict.to_broker)  # PUBACKs for messages the client may not receive
            if verdict.to_client:
                await websocket.send(verdict.to_client)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if client_id is not None and holders.get(client_id) is take_over:
            del holders[client_id]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        if gateway is not None:  # no WebSocket closing handshake, as AWS IoT Core
            gateway.note_throttled()
            websocket.transport.close()
        await websocket.close()


Admit = Callable[[str, Mapping[str, str]], "Gateway | None"]
"""(path, headers) -> the connection's Gateway, or None to relay it as it is; UpgradeRefused: 403."""


def _checker(admit: Admit | None):  # type: ignore[no-untyped-def]
    """websockets' process_request: 404 off the MQTT path; 403 when `admit` refuses the upgrade."""

    def process_request(connection, request):  # type: ignore[no-untyped-def]
        if request.path.split("?", 1)[0] != MQTT_PATH:
            return connection.respond(404, f"use wss://host:port{MQTT_PATH}\n")
        if admit is not None:
            try:
                connection.gateway = admit(request.path, dict(request.headers.raw_items()))
            except UpgradeRefused as e:
                return connection.respond(403, f"forbidden: {e}\n")
        return None

    return process_request


class WebSocketFront:
    """wss://127.0.0.1:port/mqtt for MQTT clients, served from a background thread. Without `admit`,
    every upgrade is relayed as it is (tests' brokers that restart at will)."""

    def __init__(self, port: int, broker_port: int, tls: TlsFiles, admit: Admit | None = None) -> None:
        self.port = port
        self.admit = admit
        self.broker_port = broker_port
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
            raise LocalStackError(f"cannot serve wss on port {self.port}: {self._error}")

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        holders: Holders = {}  # used on this loop only
        try:
            server = await serve(
                lambda ws: _relay(ws, self.broker_port, holders), "127.0.0.1", self.port, ssl=self.context,
                subprotocols=["mqtt", "mqttv3.1"], process_request=_checker(self.admit), compression=None,
                max_size=MAX_MESSAGE, ping_interval=None, close_timeout=1, server_header="iotnotify-local",
            )
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close(close_connections=True)

    def stop(self) -> None:
        """Close the listener and every connection, and wait for the thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
