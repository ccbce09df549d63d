"""The local broker's TLS WebSocket front: wss on 127.0.0.1, relayed to Mosquitto's plain MQTT listener.

Why not Mosquitto's own websockets listener: in Mosquitto 2.0.11 (Debian 12) it ignores the bind
address and listens on every interface (eclipse-mosquitto/mosquitto#2085, #3045), which would put an
anonymous broker on the network; its libwebsockets also adds 100-300 ms to every connection. The front
binds to loopback only and relays bytes: MQTT itself is Mosquitto's. Like AWS IoT's gateway, it checks
the SigV4 signature of each WebSocket upgrade (local/sigv4.py) and refuses unknown, tampered or
expired keys with HTTP 403.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Mapping

from iotnotify.errors import LocalStackError
from iotnotify.local.tls import TlsFiles

MQTT_PATH = "/mqtt"
READ_SIZE = 256 * 1024


async def _relay(websocket, broker_port: int) -> None:  # type: ignore[no-untyped-def]
    """Pipe one WebSocket connection to a new TCP connection to the broker, both ways."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker_port)
    except OSError:
        await websocket.close(1011, "broker unavailable")
        return

    async def upstream() -> None:
        async for message in websocket:
            writer.write(message if isinstance(message, bytes) else message.encode())
            await writer.drain()

    async def downstream() -> None:
        while data := await reader.read(READ_SIZE):
            await websocket.send(data)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        await websocket.close()


Check = Callable[[str, Mapping[str, str]], "str | None"]  # (path, headers) -> None, or why refused


def _checker(check: Check | None):  # type: ignore[no-untyped-def]
    """websockets' process_request: 404 off the MQTT path; 403 when `check` refuses the signature."""

    def process_request(connection, request):  # type: ignore[no-untyped-def]
        if request.path.split("?", 1)[0] != MQTT_PATH:
            return connection.respond(404, f"use wss://host:port{MQTT_PATH}\n")
        if check is not None and (reason := check(request.path, dict(request.headers.raw_items()))):
            return connection.respond(403, f"forbidden: {reason}\n")
        return None

    return process_request


class WebSocketFront:
    """wss://127.0.0.1:port/mqtt for MQTT clients, served from a background thread."""

    def __init__(self, port: int, broker_port: int, tls: TlsFiles, check: Check | None = None) -> None:
        self.port = port
        self.check = check
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
        try:
            server = await serve(
                lambda ws: _relay(ws, self.broker_port), "127.0.0.1", self.port, ssl=self.context,
                subprotocols=["mqtt", "mqttv3.1"], process_request=_checker(self.check), compression=None, max_size=None,
                ping_interval=None, close_timeout=1, server_header="iotnotify-local",
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
