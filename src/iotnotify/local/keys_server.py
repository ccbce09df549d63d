"""The local keys endpoint: the AWS endpoint's own `answer`, over HTTP, with a local issuer; and the
browser page at its root."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from iotnotify.cognito.local import COGNITO_PATH, POOL_ID, LocalCognito
from iotnotify.errors import LocalStackError
from iotnotify.local.sigv4 import KnownKeys
from iotnotify.server.config import EndpointConfig
from iotnotify.server.handler import KEYS_PATH, Response, answer, cors_headers, origin_allowed
from iotnotify.server.issuers import Issued, Where
from iotnotify.web import Asset, asset

LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "local"


MAX_MINTED = 10_000  # unexpired keys remembered (23 MB with their policies); past it, the oldest are forgotten


class LocalIssuer:
    """Mints random keys for the local broker in place of STS, and remembers them until they expire
    (at most `limit` of them: a loop of requests must not grow memory without bound), so that the
    wss front can check signatures made with them."""

    def __init__(self, host: str, port: int, region: str = LOCAL_REGION, limit: int = MAX_MINTED) -> None:
        self.host, self.port, self.region, self.limit = host, port, region, limit
        self._lock = threading.Lock()
        self._minted: dict[str, KnownKeys] = {}

    def where(self) -> Where:
        return Where(self.host, self.port, self.region, LOCAL_ACCOUNT)

    def issue(self, client_id: str, policy: dict[str, object], lifetime: int, identity: str | None = None,
              authenticated: bool = False) -> Issued:
        """New keys for `client_id` under `policy` (as STS's session policy); for a Cognito
        `identity`, what its policy variable stands for, and whether it signed in."""
        alphabet = string.ascii_uppercase + string.digits
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        issued = Issued(
            access_key="ASIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
            secret_key=secrets.token_urlsafe(30),
            session_token=secrets.token_urlsafe(96),
            expiration=now + dt.timedelta(seconds=lifetime),
        )
        with self._lock:
            # forget the oldest (dicts keep insertion order) while expired, or while too many
            while self._minted and (len(self._minted) >= self.limit
                                    or next(iter(self._minted.values())).expiration <= now):
                del self._minted[next(iter(self._minted))]
            self._minted[issued.access_key] = KnownKeys(issued.secret_key, issued.session_token, issued.expiration,
                                                        policy, issued.access_key, identity, authenticated)
        return issued

    def lookup(self, access_key: str) -> KnownKeys | None:
        """The keys minted under `access_key`, if any (expired or not)."""
        with self._lock:
            return self._minted.get(access_key)


MAX_BODY = 64 * 1024  # bytes of a Cognito request's body
READ_TIMEOUT = 10.0  # s for each read of a request


def loopback_hosts(port: int) -> set[str]:
    """The Host headers of a request that names a server on 127.0.0.1:port by a loopback name."""
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def loopback_origins(keys_port: int, wss_port: int) -> tuple[str, ...]:
    """The local stack's own origins: a page served by its keys endpoint or by its wss front."""
    return tuple(f"{scheme}://{name}:{port}" for scheme, port in (("http", keys_port), ("https", wss_port))
                 for name in ("127.0.0.1", "localhost"))


def _quiet(*_args: object, **_fields: object) -> None:
    """The local endpoint logs nothing: it runs beside a user's terminal."""


class KeysHandler(BaseHTTPRequestHandler):
    """The keys endpoint, the local Cognito and the page; `_handler` binds a subclass to one
    configuration. With `aws_rules`, keys say `"awsRules": true` (the broker plays by AWS IoT Core's
    rules: the client keeps its AWS flow control on). Requests must name the endpoint by a loopback
    name in their Host header (not a site's name resolved to 127.0.0.1), and browser pages must come
    from an allowed origin (`config.cors_origins`)."""

    server_version = "iotnotify-local"
    timeout = READ_TIMEOUT  # http.server sets it on each connection: a client that stalls is let go
    config: EndpointConfig
    issuer: LocalIssuer
    aws_rules: bool
    mqtt_url: str | None
    cognito: LocalCognito

    def _send(self, response: Response) -> None:
        data = json.dumps(response.body).encode() if response.body is not None else b""
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.body is not None and "Content-Type" not in response.headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self) -> None:
        url = urlsplit(self.path)
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        port = cast(HTTPServer, self.server).server_port
        if host is not None and host.lower() not in loopback_hosts(port):  # DNS rebinding: a site's name
            self._send(Response(403, {"message": "use the keys endpoint by its loopback address"}, {}))
        elif self.command == "GET" and (page := asset(url.path, self.mqtt_url, POOL_ID, COGNITO_PATH)) is not None:
            self._page(page)
        elif url.path == COGNITO_PATH and self.command == "POST":  # keys from the local identity pool
            self._cognito(origin)
        elif url.path != KEYS_PATH:
            self._send(Response(404, {"message": f"not found: use GET {KEYS_PATH}"},
                                cors_headers(self.config.cors_origins, origin)))
        else:
            response = answer(self.command, dict(parse_qsl(url.query)), self.config, self.issuer, log=_quiet,
                              origin=origin)
            if self.aws_rules and response.status == 200 and response.body is not None:
                response.body["awsRules"] = True
            self._send(response)

    def _page(self, page: Asset) -> None:
        self.send_response(200)
        for name, value in page.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(page.body)))
        self.end_headers()
        self.wfile.write(page.body)

    def _cognito(self, origin: str | None) -> None:
        if not origin_allowed(self.config.cors_origins, origin):
            self._send(Response(403, {"message": "this origin may not get keys"}, {}))
            return
        length = (self.headers.get("Content-Length") or "0").strip()
        if not (length.isascii() and length.isdecimal()):
            self._send(Response(400, {"__type": "SerializationException", "message": "Content-Length is not a number"},
                                {}))
            return
        if int(length) > MAX_BODY:
            self._send(Response(413, {"__type": "SerializationException",
                                      "message": f"the body is over {MAX_BODY} bytes"}, {}))
            return
        self._send(self.cognito.answer(self.headers.get("X-Amz-Target"), self.rfile.read(int(length))))

    do_GET = do_OPTIONS = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: the keys endpoint runs beside a user's terminal


def _handler(config: EndpointConfig, issuer: LocalIssuer, aws_rules: bool,
             mqtt_url: str | None) -> type[BaseHTTPRequestHandler]:
    """KeysHandler bound to one configuration and issuer (http.server makes a handler per request)."""
    return type("BoundKeysHandler", (KeysHandler,), {"config": config, "issuer": issuer, "aws_rules": aws_rules,
                                                    "mqtt_url": mqtt_url, "cognito": LocalCognito(config, issuer)})


MAX_HANDLERS = 32  # connections served at once (a thread each); more wait in the listen queue
BACKLOG = 128  # connections the kernel completes before they are accepted (socketserver's default: 5)


class _QuietServer(ThreadingHTTPServer):
    """A request that fails in a way http.server does not answer itself (a client gone, a timeout)
    ends quietly: socketserver would print a traceback on the terminal of `iotnotify local`.

    Bounded: at most MAX_HANDLERS connections are served at once (a thread each, READ_TIMEOUT for a
    client that stalls), the others wait in a listen queue of BACKLOG. With socketserver's 5, 50
    browsers asking at once lost SYNs, retried a second later: p99 1.4 s (bench/keys_endpoint.py)."""

    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_HANDLERS)
        self.stopping = False

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self.slots.acquire(timeout=0.5):  # the accept loop waits; stop() does not wait for a slot
            if self.stopping:
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class KeysServer:
    """The HTTP endpoint on 127.0.0.1, served from a background thread."""

    def __init__(self, port: int, config: EndpointConfig, issuer: LocalIssuer, aws_rules: bool = True,
                 mqtt_url: str | None = None) -> None:
        try:
            self.httpd = _QuietServer(("127.0.0.1", port), _handler(config, issuer, aws_rules, mqtt_url))
        except OSError:
            raise LocalStackError(f"port {port} (keys endpoint) is in use: choose another with --keys-port") from None
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{KEYS_PATH}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="keys-endpoint", daemon=True)

    def start(self) -> None:
        """Serve requests in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.stopping = True
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
