#!/usr/bin/env python3
"""What iotnotify's long-running commands cost while nothing happens (issue 32, "idle cost"):
each connected to a local stack under AWS IoT Core's rules, no message published, for --minutes.
Per process: CPU seconds (user + system, /proc/PID/stat) and the share of one core; wake-ups a
minute (context switches of all its threads, voluntary and not, /proc/PID/task/*/status: each is
a thread that slept and was woken, by a timer or I/O); RSS; and with --threads, which threads wake.

    .venv/bin/python bench/idle.py [--minutes 10] [--threads]

Target: under 0.1% of a core each, and no timer faster than the keep-alive needs (60 s: a
PINGREQ a minute, and the broker's answer).
"""

from __future__ import annotations

import argparse
import collections
import fcntl
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

from compare import free_port, user_environment

from iotnotify.local.stack import LocalStack, StackConfig

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))
WARM_UP = 15.0  # s after the last start before the first sample: connections made, imports done
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def wakeups(pid: int) -> collections.Counter[str]:
    """Context switches so far, by thread name (the threads alive now)."""
    found: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines())
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        found[status["Name"].strip()] += int(status["voluntary_ctxt_switches"]) + \
            int(status["nonvoluntary_ctxt_switches"])
    return found


def rss_mib(pid: int) -> float:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", action="store_true", help="Show each process's wake-ups by thread.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    stack = LocalStack(StackConfig(work / "stack", free_port(), free_port(), free_port(), topics=("idle/*",)))
    stack.start()
    (work / "run").mkdir(mode=0o700)
    env = {**user_environment(), "XDG_CACHE_HOME": str(work / "cache"), "XDG_CONFIG_HOME": str(work / "config"),
           "XDG_RUNTIME_DIR": str(work / "run"), "XDG_STATE_HOME": str(work / "state"),
           "IOTNOTIFY_ENDPOINT": stack.endpoint_url, "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file),
           "TERM": "xterm-256color"}
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    commands = {
        "subscribe": ([IOTNOTIFY, "subscribe", "idle/#"], quiet),
        "tail (live)": ([IOTNOTIFY, "tail", "idle/#"], {"stdin": slave, "stdout": slave, "stderr": slave}),
        "tail (pipe)": ([IOTNOTIFY, "tail", "idle/#"], quiet),
        "on": ([IOTNOTIFY, "on", "idle/run", "--", "true"], quiet),
        "respond": ([IOTNOTIFY, "respond", "idle/rpc", "--", "cat"], quiet),
        "watch": ([IOTNOTIFY, "watch", "idle/#", "--silence", "1h"], quiet),
        "agent": ([IOTNOTIFY, "agent", "start"], quiet),
    }
    processes = {name: subprocess.Popen(argv, env=env, start_new_session=True, **streams)  # type: ignore[call-overload]
                 for name, (argv, streams) in commands.items()}
    os.close(slave)
    try:
        time.sleep(WARM_UP)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        if dead:
            raise SystemExit(f"died before the measurement: {', '.join(dead)}")
        before = {name: (cpu_seconds(p.pid), wakeups(p.pid), rss_mib(p.pid)) for name, p in processes.items()}
        began = time.monotonic()
        while time.monotonic() - began < args.minutes * 60:  # the live tail's terminal reads what it draws
            if _readable(master):
                try:
                    os.read(master, 65536)
                except OSError:
                    time.sleep(1)
        elapsed = time.monotonic() - began
        after = {name: (cpu_seconds(p.pid), wakeups(p.pid), rss_mib(p.pid)) for name, p in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 2)
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        os.close(master)
        stack.stop()
    print(f"idle: {elapsed / 60:.1f} min connected to a local stack under AWS's rules (keep-alive 60 s), "
          "no message\n")
    print(f"{'process':<13} {'CPU s':>7} {'% core':>7} {'wake-ups/min':>13} {'RSS MiB':>8}")
    for name in processes:
        (cpu0, wake0, _rss0), (cpu1, wake1, rss1) = before[name], after[name]
        woken = sum((wake1 - wake0).values())  # (threads that ended between are not counted)
        print(f"{name:<13} {cpu1 - cpu0:>7.2f} {100 * (cpu1 - cpu0) / elapsed:>7.3f} "
              f"{woken / (elapsed / 60):>13.1f} {rss1:>8.1f}")
        if args.threads:
            for thread, count in (wake1 - wake0).most_common():
                print(f"    {thread:<20} {count / (elapsed / 60):>8.1f}/min")


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 1.0)[0])


if __name__ == "__main__":
    main()
