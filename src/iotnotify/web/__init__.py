"""The tutorial's browser page: index.html and static/ (page.js, page.css, and npm's builds of MQTT.js
and aws4fetch, copied by scripts/build-web, so that the package needs no Node and the page works
offline), and its files as the local keys endpoint and the Lambda serve them at `/` and
`/static/...`, beside `/iot/keys`."""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
STATIC = ("page.js", "page.css", "mqtt.min.js", "aws4fetch.umd.js", "LICENSES.txt")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:{cognito}; "
       "img-src 'self' data:; worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
"""The page runs only its own files and talks only to its origin (keys), WebSocket brokers and, when
it offers keys from an identity pool, that pool's Cognito Identity and no other (MQTT.js runs its
timers in a worker it makes from a blob, so that a background tab keeps pinging)."""


def cognito_origin(pool: str | None, url: str | None) -> str | None:
    """The origin the page's Cognito calls go to, for the CSP: `url`'s (None for a path on the page's
    own origin, as the local stack's), else the pool region's Cognito Identity (as page.js builds it)."""
    from urllib.parse import urlsplit

    if not pool:
        return None
    if not url:
        region = pool.split(":")[0]
        if not region or not all(c.isascii() and (c.isalnum() or c == "-") for c in region):
            return None  # not a pool id: the page's calls are refused, nothing else is allowed
        return f"https://cognito-identity.{region}.amazonaws.com"
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None  # a path: 'self'
    if parts.scheme not in ("http", "https") or not all(c.isalnum() or c in ".-:[]" for c in parts.netloc):
        return None  # not an origin a CSP can name: the page's calls there are refused, nothing else
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Asset:
    """One file of the page: its bytes and the headers to serve it with."""

    body: bytes
    headers: dict[str, str]


def asset(path: str, mqtt_url: str | None = None, cognito_pool: str | None = None,
          cognito_url: str | None = None) -> Asset | None:
    """The file at `path` (`/` is the page; `/static/NAME` its parts), None if there is none.
    `mqtt_url` (the local stack's ws:// listener) goes into the page; else the page connects to
    wss://<the keys' iotEndpoint>/mqtt. With `cognito_pool`, the page may also get keys from that
    identity pool (at `cognito_url`, default the pool region's Cognito Identity)."""
    if path in ("/", "/index.html"):
        name, folder = "index.html", resources.files("iotnotify.web")
    elif path.startswith("/static/") and path.removeprefix("/static/") in STATIC:
        name, folder = path.removeprefix("/static/"), resources.files("iotnotify.web").joinpath("static")
    else:
        return None
    body = folder.joinpath(name).read_bytes()
    if name == "index.html":
        settings = {"iotnotify-mqtt-url": mqtt_url, "iotnotify-cognito-pool": cognito_pool,
                    "iotnotify-cognito-url": cognito_url}
        tags = "".join(f'<meta name="{key}" content="{html.escape(value)}">' for key, value in settings.items() if value)
        body = body.replace(b"<!--MQTT-URL-->", tags.encode())
    headers = {"Content-Type": TYPES["." + name.rsplit(".", 1)[1]], "X-Content-Type-Options": "nosniff",
               "Cache-Control": "no-cache"}
    if name == "index.html":
        origin = cognito_origin(cognito_pool, cognito_url)
        csp = CSP.format(cognito=f" {origin}" if origin else "")
        headers |= {"Content-Security-Policy": csp, "Referrer-Policy": "no-referrer"}
    return Asset(body, headers)
