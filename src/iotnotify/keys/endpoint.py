"""Fetching keys from a keys endpoint over HTTP: bounded retries for bad minutes, fast failure otherwise."""

from __future__ import annotations

import json
import random
import re
import socket
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from iotnotify.deadline import Deadline, TooLarge, opener, read_body
from iotnotify.errors import KeysError
from iotnotify.keys.model import TemporaryKeys, parse_keys
from iotnotify.proxy import Proxy, proxy_for
from iotnotify.shown import shown
from iotnotify.trace import log

ATTEMPTS = 3
FIRST_DELAY = 0.5  # s, doubled per retry, with jitter
MAX_ERROR_BODY = 64 * 1024  # bytes of an error page read for its message


class TransientKeysError(KeysError):
    """A failure worth another try: a timeout, a dropped connection, a 5xx answer."""


def _excerpt(body: bytes, limit: int = 80) -> str:
    """A short, single-line excerpt of a response body for an error message."""
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(body: bytes) -> str:
    """The `message` of a JSON error body (API Gateway's and ours), the title of an HTML page (a
    proxy's, say), else an excerpt of the body."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        title = re.search(rb"<title>(.*?)</title>", body, re.IGNORECASE | re.DOTALL)
        return _excerpt(title.group(1) if title else body)
    return _excerpt(str(data["message"]).encode()) if isinstance(data, dict) and "message" in data else _excerpt(body)


def fetch_once(url: str, deadline: Deadline, stated: float, proxy: Proxy | None = None) -> TemporaryKeys:
    """One GET of the keys endpoint (through `proxy`, if given), all of it (connect, CONNECT, TLS,
    headers, body) before `deadline`; TransientKeysError for what a retry may fix. `stated` is
    the time limit errors mention (the whole fetch's)."""
    import http.client

    request = urllib.request.Request(  # noqa: S310 - fetch_keys lets only http(s) URLs through
        url, headers={"Accept": "application/json", "User-Agent": "iotnotify"})
    scheme = urlsplit(url).scheme
    log.debug("keys: GET %s%s", url, f" through proxy {proxy.name}" if proxy else "")
    late = f"keys endpoint {url} did not answer within {stated:g} s"
    try:
        with opener(deadline, {scheme: proxy.url} if proxy else {}).open(request, timeout=deadline.remaining()) \
                as response:
            body = read_body(response)
            log.debug("keys: HTTP %d, %d bytes", response.status, len(body))
    except urllib.error.HTTPError as e:
        with e:  # it holds the connection: close it
            try:
                detail = _message(e.read(MAX_ERROR_BODY))
            except (OSError, http.client.HTTPException):
                detail = ""
        error = TransientKeysError if e.code >= 500 or e.code == 429 else KeysError
        raise error(f"keys endpoint {url} answered HTTP {e.code}" + (f": {detail}" if detail else "")) from None
    except TooLarge as e:  # not what a retry mends
        raise KeysError(f"keys endpoint {url} failed: {e}") from None
    except TimeoutError:
        raise TransientKeysError(late) from None
    except urllib.error.URLError as e:
        if deadline.expired or isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise TransientKeysError(late) from None
        raise TransientKeysError(f"keys endpoint {url} is unreachable: {shown(str(e.reason))}") from None
    except (OSError, ValueError, http.client.HTTPException) as e:  # a reset, a bad status line, 100+ headers...
        if deadline.expired:
            raise TransientKeysError(late) from None
        raise TransientKeysError(f"keys endpoint {url} failed: {_failure(e)}") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise KeysError(f"keys endpoint {url} did not answer JSON: {_excerpt(body)!r}") from None
    return parse_keys(data)


def _failure(error: Exception) -> str:
    """What went wrong in words: http.client's exceptions say little (LineTooLong: 'got more than
    65536 bytes when reading header line'), some nothing at all (an IncompleteRead's repr)."""
    text = str(error) or type(error).__name__
    return shown(f"{type(error).__name__}: {text}" if "http.client" in type(error).__module__ else text)


def fetch_keys(url: str, timeout: float, attempts: int = ATTEMPTS, proxy: str | None = None) -> TemporaryKeys:
    """GET the keys endpoint, retrying timeouts, dropped connections and 5xx with backoff, all
    within `timeout` seconds; 4xx and unusable answers fail at once. Errors are one line, and name
    the proxy when one is used (`proxy`, or HTTPS_PROXY/HTTP_PROXY unless NO_PROXY says otherwise)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as e:
        raise KeysError(f"keys endpoint {url!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise KeysError(f"keys endpoint {url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise KeysError(f"keys endpoint {url!r} has no host")
    through = proxy_for(parts.scheme, parts.hostname, proxy)
    with Deadline(timeout) as deadline:
        return _attempts(url, deadline, attempts, through)


def _attempts(url: str, deadline: Deadline, attempts: int, through: Proxy | None) -> TemporaryKeys:
    """fetch_keys' attempts, all before `deadline`."""
    said = f" (through proxy {through.name})" if through else ""
    for attempt in range(attempts):
        try:
            return fetch_once(url, deadline, deadline.seconds, proxy=through)
        except TransientKeysError as e:
            delay = FIRST_DELAY * 2**attempt * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
            if attempt == attempts - 1 or time.monotonic() + delay >= deadline.at:
                raise KeysError(f"{e}{said}") from None
            log.debug("keys: %s; attempt %d of %d, the next in %.1f s", e, attempt + 1, attempts, delay)
            time.sleep(delay)
        except KeysError as e:
            if not said:
                raise
            raise KeysError(f"{e}{said}") from None
    raise AssertionError("unreachable")
