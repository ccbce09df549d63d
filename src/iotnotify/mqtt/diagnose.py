"""What went wrong, in words: awscrt's connection errors classified, a TLS handshake probed for the
reason awscrt gives late, a connection taken over."""

from __future__ import annotations

from iotnotify.errors import ConnectError, KeysRefused, TakenOver
from iotnotify.proxy import Proxy, tunnel
from iotnotify.shown import shown

UPGRADE_REFUSED = "AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE"
"""awscrt's error for an upgrade answered with anything but 101: AWS IoT Core answers 403 to keys it
does not accept (as the local front does)."""
REFUSED = (UPGRADE_REFUSED, "AWS_ERROR_HTTP_CONNECTION_CLOSED")
"""awscrt's errors for a first connection the broker refused (the keys, most often). A socket closed
before the connection was made may be a refusal too (a server may close it instead of answering),
but the network is likelier: classify() says both, as a KeysRefused, so that cached keys are tried
again once fetched anew. A reconnection attempt takes only UPGRADE_REFUSED as a refusal: a socket
closed while the network is away is no reason to forget the keys (bench/recovery.py)."""


def classify(error: BaseException, where: str) -> ConnectError:
    """Turn an awscrt connection error into a one-line ConnectError that says what failed."""
    name = getattr(error, "name", "") or type(error).__name__
    if name.startswith("AWS_IO_TLS") or "TLS" in name:
        return ConnectError(f"TLS failure with broker {where} ({name}): check --ca-file")
    if name in ("AWS_IO_SOCKET_CONNECTION_REFUSED", "AWS_IO_SOCKET_TIMEOUT", "AWS_IO_DNS_INVALID_NAME",
                "AWS_IO_DNS_QUERY_FAILED", "AWS_IO_SOCKET_NO_ROUTE_TO_HOST", "AWS_IO_SOCKET_NETWORK_DOWN",
                "AWS_IO_DNS_NO_ADDRESS_FOR_HOST"):
        return ConnectError(f"broker {where} is unreachable ({name})")
    if name == "AWS_IO_SOCKET_CLOSED":  # a broker may refuse so; so may the network end it, which is likelier
        return KeysRefused(f"broker {where} closed the connection before it was made ({name}): the network "
                           "went, or the broker did not accept the keys")
    if name in REFUSED:
        return KeysRefused(f"broker {where} refused the MQTT WebSocket connection ({name}): "
                            "keys expired or not accepted, or not an MQTT-over-WebSocket endpoint")
    return ConnectError(f"cannot connect to broker {where}: {name or error}")


def probe_tls(host: str, port: int, ca_file: str | None, timeout: float = 5.0, proxy: Proxy | None = None) -> None:
    """Raise ConnectError if a TLS handshake with host:port fails certificate checks (through
    `proxy`, which it names if it cannot be reached or refuses the tunnel)."""
    import socket
    import ssl

    from iotnotify.deadline import Deadline

    context = ssl.create_default_context(cafile=ca_file)
    deadline = Deadline(timeout)  # the handshake too: a server may drip it a byte at a time
    try:
        with deadline:
            raw = tunnel(proxy, host, port, timeout) if proxy else socket.create_connection((host, port), timeout)
            with deadline.watch(raw) as sock, context.wrap_socket(sock, server_hostname=host):
                return
    except ssl.SSLCertVerificationError as e:
        raise ConnectError(f"TLS failure with broker {host}:{port}: {shown(e.verify_message)}: "
                           "check --ca-file") from None
    except ssl.SSLError as e:
        if deadline.expired:
            return  # too slow, not a TLS problem: the client reports what it sees
        raise ConnectError(f"TLS failure with broker {host}:{port}: {shown(str(e.reason or e))}") from None
    except OSError:
        return  # not a TLS problem; the client reports what it sees


def taken_over(client_id: str) -> TakenOver:
    return TakenOver(f"another client connected as {client_id!r} and took over this connection "
                     "(AWS IoT Core allows one connection per client id)")
