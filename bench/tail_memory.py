#!/usr/bin/env python3
"""Memory of `iotnotify tail` under traffic: RSS of a real `tail` process (live view, in a
pseudo-terminal) after 1,000 messages and after 1,000,000 (or --messages N), through a local stack.

    .venv/bin/python bench/tail_memory.py [--messages 1000000]
"""

import argparse
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from compare import free_port, user_environment

from iotnotify.local.stack import LocalStack, StackConfig

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def counted(seen: bytearray) -> int:
    """The message count in the last footer tail drew."""
    shown = re.findall(rb"(\d+) messages \xc2\xb7", bytes(seen))
    return int(shown[-1]) if shown else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    stack = LocalStack(StackConfig(work, free_port(), free_port(), free_port(), permissive=True))  # not throttled
    stack.start()
    env = {**user_environment(), "XDG_CACHE_HOME": str(work / "cache"), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
           "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file), "TERM": "xterm-256color"}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    tail = subprocess.Popen([IOTNOTIFY, "tail", "bench/#", "--qos", "0"], stdin=slave, stdout=slave, stderr=slave,
                            env=env, start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def drain() -> None:  # a terminal that reads everything, as a person's would
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk[-4096:])
            del seen[:-8192]

    threading.Thread(target=drain, daemon=True).start()
    try:
        while b"connected" not in seen:
            time.sleep(0.05)
        rows = []
        sent = 0
        started = time.perf_counter()
        for target in (1_000, args.messages):
            lines = b"".join(b'{"n": %d, "payload": "%s"}\n' % (i, b"x" * 100) for i in range(sent, target))
            subprocess.run([IOTNOTIFY, "send", "-l", "--qos", "1", "bench/flood"], input=lines, env=env, check=True)
            sent = target
            deadline = time.monotonic() + 120
            while counted(seen) < target and time.monotonic() < deadline:  # tail takes in the last ones
                time.sleep(0.2)
            rows.append((target, counted(seen), *rss_kib(tail.pid)))
        elapsed = time.perf_counter() - started
        print(f"{'sent':>10} {'tail counted':>12} {'RSS MiB':>8} {'peak MiB':>9}")
        for count, shown, rss, peak in rows:
            print(f"{count:>10,} {shown:>12,} {rss / 1024:>8.1f} {peak / 1024:>9.1f}")
        growth = (rows[-1][2] - rows[0][2]) / 1024
        print(f"RSS growth from {rows[0][0]:,} to {rows[-1][0]:,} messages: {growth:+.1f} MiB "
              f"({rows[-1][1] / elapsed:,.0f} messages/s through tail's live view)")
    finally:
        os.killpg(tail.pid, signal.SIGINT)
        tail.wait(10)
        os.close(master)
        stack.stop()


if __name__ == "__main__":
    main()
