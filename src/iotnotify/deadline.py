"""One time limit for a whole exchange over the network (connect, a proxy's CONNECT, TLS, the request,
the headers, the body), not per read: a socket's timeout is per read, so a server or a proxy that
drips a byte a second would hold a command forever. At the deadline the exchange's sockets are shut
down (through a duplicate of each, which stays valid however the socket is wrapped or closed), and
the read under way ends at once; `expired` then says why.

Also the urllib opener whose connections are watched so, and a read of a body with a size limit."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client
    import urllib.request

MAX_BODY = 1 << 20  # bytes of an answer read at most (keys, a Cognito answer, an error page)


class Deadline:
    """`seconds` from now, for the sockets given to watch(); used as a context manager around the
    exchange (the watch ends with it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._watched: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def remaining(self) -> float:
        """Seconds left (never less than a millisecond: a socket's timeout of 0 would mean non-blocking)."""
        return max(self.at - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> socket.socket:
        """Shut `sock` down at the deadline (at once if it passed); `sock` is returned."""
        duplicate = sock.dup()
        with self._lock:
            self._watched.append(duplicate)
            if self.expired:
                _shut(duplicate)
        return sock

    def __enter__(self) -> Deadline:
        self._timer = threading.Timer(self.remaining(), self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            watched, self._watched = self._watched, []
        for duplicate in watched:
            duplicate.close()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for duplicate in self._watched:
                _shut(duplicate)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed by the other side


def opener(deadline: Deadline, proxies: dict[str, str] | None = None) -> urllib.request.OpenerDirector:
    """A urllib opener (through `proxies`, {scheme: URL}, and no other) whose every socket
    `deadline` watches from the moment it is made, so before a proxy's CONNECT and TLS."""
    import http.client
    import urllib.request

    def watched(base: type[http.client.HTTPConnection]) -> Any:
        class Watched(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                create: Any = self._create_connection  # type: ignore[has-type]  # set by http.client's __init__
                self._create_connection = lambda *a, **k: deadline.watch(create(*a, **k))

        return Watched

    http_connection, https_connection = watched(http.client.HTTPConnection), watched(http.client.HTTPSConnection)

    class HttpHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(http_connection, req)

    class HttpsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(https_connection, req, context=self._context)  # type: ignore[attr-defined]

    opened = urllib.request.OpenerDirector()  # http(s) only: build_opener's FTP, file and data handlers would
    for handler in (urllib.request.ProxyHandler(proxies or {}), urllib.request.UnknownHandler(), HttpHandler(),
                    HttpsHandler(), urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPRedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):  # follow a redirect to ftp:// past the deadline's watch
        opened.add_handler(handler)
    return opened


class TooLarge(ValueError):
    """An answer over the size read."""


def read_body(response: Any, limit: int = MAX_BODY) -> bytes:
    """The body of `response`, at most `limit` bytes; TooLarge if it is longer."""
    body: bytes = response.read(limit + 1)
    if len(body) > limit:
        raise TooLarge(f"the answer is over {limit} bytes")
    return body
