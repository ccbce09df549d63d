"""HTTP proxies, as curl and urllib take them: `--proxy URL`, else HTTPS_PROXY (https_proxy) for TLS
(the wss connection, an https keys endpoint, the TLS probe) or HTTP_PROXY (http_proxy) for an http
keys endpoint; NO_PROXY (no_proxy) names hosts reached directly (urllib's own matching: host names,
domain suffixes, `*`). Only http:// proxies, reached with CONNECT for TLS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from iotnotify.errors import ConnectError, UsageError
from iotnotify.shown import shown_bytes

if TYPE_CHECKING:
    import socket

MAX_ANSWER = 64 * 1024  # bytes of a proxy's answer to CONNECT read at most


@dataclass(frozen=True)
class Proxy:
    """A proxy: where it is, and its Basic credentials if its URL has them (never shown)."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The proxy in messages: http://host:port, without credentials."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL urllib takes, credentials included."""
        if self.username is None:
            return self.name
        from urllib.parse import quote

        return f"http://{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@{self.host}:{self.port}"


def parse_proxy(text: str, where: str = "--proxy") -> Proxy:
    """`http://[user:password@]host[:port]` (or `host:port`, as curl takes it); UsageError otherwise."""
    parts = urlsplit(text if "://" in text else f"http://{text}")
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"{where} {parts.netloc!r}: the port is not a number from 1 to 65535") from None
    if parts.scheme != "http":
        raise UsageError(f"{where}: only http:// proxies are supported, not {parts.scheme}://")
    if not parts.hostname:
        raise UsageError(f"{where} {text!r} has no host")
    return Proxy(parts.hostname, port, None if parts.username is None else unquote(parts.username),
                 None if parts.password is None else unquote(parts.password))


def proxy_for(scheme: str, host: str, explicit: str | None, env: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy to reach `host` over `scheme` ("https" for TLS and wss, "http"), if any."""
    env = os.environ if env is None else env
    if _bypassed(host, env):
        return None
    if explicit:
        return parse_proxy(explicit)
    names = ("HTTPS_PROXY", "https_proxy") if scheme in ("https", "wss") else ("HTTP_PROXY", "http_proxy")
    for name in names:
        if env.get(name):
            return parse_proxy(env[name], name)
    return None


def _bypassed(host: str, env: Mapping[str, str]) -> bool:
    """NO_PROXY (or no_proxy) names `host` (urllib's matching; urllib.request is dear to import, so
    only when there is a NO_PROXY to match)."""
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY")
    if not no_proxy:
        return False
    from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]  # in urllib, not typeshed

    return bool(proxy_bypass_environment(host, {"no": no_proxy}))


def tunnel(proxy: Proxy, host: str, port: int, timeout: float) -> socket.socket:
    """A socket through `proxy` to host:port (HTTP CONNECT), the proxy's answer in `timeout`
    seconds in all; ConnectError naming the proxy if it cannot be reached, refuses, or is too slow."""
    import socket  # here: a send over HTTPS needs none, and socket.py is dear to import

    from iotnotify.deadline import Deadline

    with Deadline(timeout) as deadline:
        try:
            sock = deadline.watch(socket.create_connection((proxy.host, proxy.port), timeout=timeout))
        except OSError as e:
            raise ConnectError(f"proxy {proxy.name} is unreachable: {e.strerror or e}") from None
        request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if proxy.username is not None:
            import base64

            token = base64.b64encode(f"{proxy.username}:{proxy.password or ''}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        try:
            sock.sendall((request + "\r\n").encode())
            answer = b""
            while b"\r\n\r\n" not in answer and len(answer) < MAX_ANSWER:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError as e:
            sock.close()
            if deadline.expired:
                raise ConnectError(f"proxy {proxy.name} did not answer within {timeout:g} s") from None
            raise ConnectError(f"proxy {proxy.name} failed: {e.strerror or e}") from None
    if deadline.expired:
        sock.close()
        raise ConnectError(f"proxy {proxy.name} did not answer within {timeout:g} s")
    status = answer.split(b"\r\n", 1)[0]
    if status.split(b" ")[1:2] != [b"200"]:
        sock.close()
        said = shown_bytes(status) if status else "no answer"
        raise ConnectError(f"proxy {proxy.name} refused the tunnel to {host}:{port}: {said}")
    return sock


def crt_options(proxy: Proxy) -> object:
    """The proxy as awscrt takes it: a CONNECT tunnel (Basic credentials if the URL has them)."""
    from awscrt import http

    basic = proxy.username is not None
    return http.HttpProxyOptions(
        proxy.host, proxy.port, connection_type=http.HttpProxyConnectionType.Tunneling,
        auth_type=http.HttpProxyAuthenticationType.Basic if basic else http.HttpProxyAuthenticationType.Nothing,
        auth_username=proxy.username if basic else None, auth_password=proxy.password if basic else None)
