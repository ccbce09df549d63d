"""TCP_NODELAY on the client's connection to the broker, which awscrt does not set (`nodelay`).

awscrt's socket options have no TCP_NODELAY, so its sockets keep Nagle's algorithm: a small
write (a PUBLISH) waits while an earlier one (the PUBACK of a received message) is not yet
acknowledged, and the broker's side acknowledges late (delayed ACK, 40 ms on Linux): latency and
a cold send's connection pay for it (bench/README.md, "Shortcuts"). Every MQTT client we compare
with sets it (paho, mosquitto_pub, MQTT.js).

The socket is awscrt's, so we find it among the process's open descriptors: a TCP socket whose
peer is the broker's port.
"""

from __future__ import annotations

import os
import stat

from iotnotify.crt import decide

FD_FOLDERS = ("/proc/self/fd", "/dev/fd")  # Linux, then macOS and the BSDs
_off: list[str] = []


def off() -> str:
    """Why set_nodelay does nothing ("" when it sets it); awscrt is imported by then."""
    if not _off:
        import awscrt

        _off.append(decide("nodelay", awscrt.__version__))
    return _off[0]


def set_nodelay(peer_port: int) -> int:
    """Set TCP_NODELAY on every open TCP socket connected to `peer_port`; how many were set (0
    when the shortcut is off)."""
    if off():
        return 0
    import socket

    # os, not pathlib: this is polled often while a connection is made
    folder = next((f for f in FD_FOLDERS if os.path.isdir(f)), None)  # noqa: PTH112
    if folder is None:
        return 0
    done = 0
    for name in os.listdir(folder):  # noqa: PTH208
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))  # a duplicate: closing it leaves awscrt's open
        except (ValueError, OSError):
            continue  # not a number, or closed meanwhile
        try:
            if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                    and sock.getpeername()[1] == peer_port):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                done += 1
        except OSError:
            pass  # not connected, or gone
        finally:
            sock.close()
    return done
