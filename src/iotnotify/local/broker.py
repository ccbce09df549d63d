"""The local Mosquitto broker: its config file, its process, and waiting for it to listen."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from iotnotify.errors import LocalStackError

SBIN = "/usr/sbin:/usr/local/sbin"  # not on a non-root user's PATH on Debian
INSTALL_HINT = "install it with: sudo apt-get install -y mosquitto (Debian/Ubuntu) or brew install mosquitto"
SOCKET_NAME = "mqtt.sock"
MAX_SOCKET_PATH = 107  # bytes of a Unix socket's path on Linux (sun_path, less its NUL)


def find_mosquitto(path: str | None = None, fallback: str = SBIN) -> str:
    """Path of the mosquitto binary: on PATH, or in the sbin folders where Debian puts it."""
    search = (os.environ.get("PATH", "") if path is None else path) + os.pathsep + fallback
    found = shutil.which("mosquitto", path=search)
    if not found:
        raise LocalStackError(f"mosquitto was not found on PATH: {INSTALL_HINT}")
    return found


AUTOSAVE = 60  # s between saves of a persistent broker's state (it is saved when Mosquitto stops, too)


def render_config(port: int, extra: str = "", unix_socket: Path | None = None, session_hours: int | None = None,
                  persistence: Path | None = None) -> str:
    """mosquitto.conf: one plain MQTT listener on 127.0.0.1 (for tools; the wss front relays to it
    when it has no `unix_socket`), the front's Unix socket, then any `extra` lines (bench/ adds a
    TLS listener for mosquitto_pub). `user` keeps a root start from switching to the `mosquitto`
    user, as Debian's Mosquitto otherwise does. With `session_hours`, MQTT 3.1.1 persistent sessions
    (and MQTT 5 ones asking longer) end that long after their client left (Mosquitto counts in hours).
    With `persistence` (a folder), sessions, their queued messages and retained messages outlive a
    restart, as AWS IoT Core's do: saved there when Mosquitto stops, and every AUTOSAVE seconds."""
    lines = [
        "# written by `iotnotify local`; regenerated at every start",
        f"user {getpass.getuser()}",
        "persistence false",
        "allow_anonymous true",
        "max_queued_messages 100000",
        "set_tcp_nodelay true",  # small messages go at once: latency, not Nagle's batching
        "max_inflight_messages 100",  # AWS IoT Core allows 100 unacknowledged QoS 1 messages per client
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        f"listener {port} 127.0.0.1",
        "protocol mqtt",
    ]
    if session_hours is not None:
        lines.insert(4, f"persistent_client_expiration {session_hours}h")
    if persistence is not None:
        lines[2:3] = ["persistence true", f"persistence_location {persistence}/", f"autosave_interval {AUTOSAVE}"]
    if unix_socket is not None:
        lines += [f"listener 0 {unix_socket}", "protocol mqtt"]
    return "\n".join(lines) + "\n" + extra


def check_port_free(port: int, what: str, flag: str) -> None:
    """Raise LocalStackError if something already listens on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise LocalStackError(f"port {port} ({what}) is in use: choose another with {flag}") from None


def _die_with_parent() -> None:
    """In the child: ask Linux to stop the broker if iotnotify dies without cleaning up."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def front_socket(folder: Path) -> Path | None:
    """Where Mosquitto listens for the wss front: a Unix socket in the broker's own folder (0700):
    no TCP on either side, which under a flood is most of what relaying a message costs the broker
    (mosquitto_pub's 100,000 messages: 0.62 s of the broker's CPU against 0.94 s over loopback
    TCP). None (the front uses the TCP listener) where the path is too long for a socket's."""
    path = folder.absolute() / SOCKET_NAME
    return path if hasattr(socket, "AF_UNIX") and len(os.fsencode(path)) <= MAX_SOCKET_PATH else None


class Broker:
    """A Mosquitto process started with our config; `stop` leaves nothing behind."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.unix_socket = front_socket(folder)
        self.extra_config = ""  # more mosquitto.conf lines, written at the next start (bench/ uses it)
        self.session_hours: int | None = None  # persistent sessions end this long after their client left
        self.persistent = False  # sessions and retained messages outlive a restart (kept in `folder`)
        self.config_file = folder / "mosquitto.conf"
        self.log_file = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and return once it accepts connections."""
        from iotnotify.files import Unsafe, write_private

        binary = find_mosquitto()
        config = render_config(self.port, self.extra_config, self.unix_socket, self.session_hours,
                               self.folder if self.persistent else None)
        try:  # a folder someone else could write to could hold their mosquitto.conf, or links
            write_private(self.config_file, config.encode(), strict=True)
        except Unsafe as e:
            raise LocalStackError(f"{e}: remove it, or use another state folder (XDG_STATE_HOME)") from None
        self._remove_stale_socket()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(self.log_file, flags, 0o600), "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our mosquitto, our config file
                [binary, "-c", str(self.config_file)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, no lock taken
            )
        deadline = time.monotonic() + timeout
        while not (_listening(self.port) and (self.unix_socket is None or _listening(self.unix_socket))):
            if self.process.poll() is not None:
                raise LocalStackError(f"mosquitto exited at start: {self.last_log_line()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(f"mosquitto did not listen on port {self.port} within {timeout:g} s")
            time.sleep(0.02)

    def _remove_stale_socket(self) -> None:
        """Remove the socket a broker that died left; LocalStackError if a live one listens there."""
        if self.unix_socket is None or not os.path.lexists(self.unix_socket):
            return
        if _listening(self.unix_socket):
            raise LocalStackError(f"another local stack uses {self.folder}: stop it, or use another state folder (XDG_STATE_HOME)")
        self.unix_socket.unlink()

    def last_log_line(self) -> str:
        """The last line Mosquitto logged, for an error message."""
        try:
            lines = [ln for ln in self.log_file.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1].split(": ", 1)[-1] if lines else "no log"

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate Mosquitto (kill it if it lingers), reap it and remove its socket."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.unix_socket is not None:
            self.unix_socket.unlink(missing_ok=True)


def _listening(where: int | Path) -> bool:
    """Whether something accepts connections on 127.0.0.1:port, or on a Unix socket's path."""
    try:
        if isinstance(where, int):
            with socket.create_connection(("127.0.0.1", where), timeout=0.5):
                return True
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.5)
            sock.connect(str(where))
            return True
    except OSError:
        return False
