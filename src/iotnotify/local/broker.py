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


def find_mosquitto(path: str | None = None, fallback: str = SBIN) -> str:
    """Path of the mosquitto binary: on PATH, or in the sbin folders where Debian puts it."""
    search = (os.environ.get("PATH", "") if path is None else path) + os.pathsep + fallback
    found = shutil.which("mosquitto", path=search)
    if not found:
        raise LocalStackError(f"mosquitto was not found on PATH: {INSTALL_HINT}")
    return found


def render_config(port: int, extra: str = "") -> str:
    """mosquitto.conf: one plain MQTT listener on 127.0.0.1 (the wss front relays to it), then any
    `extra` lines (bench/ adds a TLS listener for mosquitto_pub). `user` keeps a root start from
    switching to the `mosquitto` user, as Debian's Mosquitto otherwise does."""
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


class Broker:
    """A Mosquitto process started with our config; `stop` leaves nothing behind."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.extra_config = ""  # more mosquitto.conf lines, written at the next start (bench/ uses it)
        self.config_file = folder / "mosquitto.conf"
        self.log_file = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Start Mosquitto and return once it accepts connections."""
        from iotnotify.files import Unsafe, write_private

        binary = find_mosquitto()
        try:  # a folder someone else could write to could hold their mosquitto.conf, or links
            write_private(self.config_file, render_config(self.port, self.extra_config).encode(), strict=True)
        except Unsafe as e:
            raise LocalStackError(f"{e}: remove it, or use another state folder (XDG_STATE_HOME)") from None
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(self.log_file, flags, 0o600), "wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our mosquitto, our config file
                [binary, "-c", str(self.config_file)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, no lock taken
            )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None:
                raise LocalStackError(f"mosquitto exited at start: {self.last_log_line()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(f"mosquitto did not listen on port {self.port} within {timeout:g} s")
            time.sleep(0.02)

    def last_log_line(self) -> str:
        """The last line Mosquitto logged, for an error message."""
        try:
            lines = [ln for ln in self.log_file.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1].split(": ", 1)[-1] if lines else "no log"

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate Mosquitto (kill it if it lingers) and reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
