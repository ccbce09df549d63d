"""The local keys endpoint: GET /iot/keys answers like the AWS one, with freshly minted keys."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from iotnotify.errors import LocalStackError

KEYS_PATH = "/iot/keys"


@dataclass(frozen=True)
class LocalIssuer:
    """Mints keys for the local broker: random values, a fixed lifetime."""

    host: str
    port: int
    region: str = "local"
    lifetime: int = 3600

    def mint(self) -> dict[str, object]:
        """A keys response: the tutorial's five fields plus port and expiration."""
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.lifetime)
        alphabet = string.ascii_uppercase + string.digits
        return {
            "iotEndpoint": self.host,
            "port": self.port,
            "region": self.region,
            "accessKey": "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
            "secretKey": secrets.token_urlsafe(30),
            "sessionToken": secrets.token_urlsafe(96),
            "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _handler(issuer: LocalIssuer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one issuer."""

    class KeysHandler(BaseHTTPRequestHandler):
        server_version = "iotnotify-local"

        def _send(self, status: int, body: dict[str, object] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
            self.send_header("Cache-Control", "no-store")
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?", 1)[0] != KEYS_PATH:
                self._send(404, {"message": f"not found: use GET {KEYS_PATH}"})
                return
            self._send(200, issuer.mint())

        def do_OPTIONS(self) -> None:  # noqa: N802
            self._send(204, None)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the keys endpoint runs beside a user's terminal

    return KeysHandler


class KeysServer:
    """The HTTP endpoint on 127.0.0.1, served from a background thread."""

    def __init__(self, port: int, issuer: LocalIssuer) -> None:
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(issuer))
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
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
