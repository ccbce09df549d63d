#!/usr/bin/env python3
"""A day of long-running clients compressed into minutes, under AWS IoT Core's rules.

A local stack whose connections last 20 s (AWS: 24 hours) and whose keys last 60 s (AWS: up to an
hour), with its connect rate, throttles and session rules on; against it, for --minutes:

  subscribe --session -q 1   every message must arrive (at least once): its session keeps them
  tail                       a clean session: what is sent while it reconnects is not kept
  respond -- cat             answers a `request` every 5 s
  agent start                a `send -l` stream through it
  send -l -q 1 --no-agent    a stream of its own

the two streams together at --rate messages a second, and the whole stack restarted once halfway
(keys and connections gone; sessions and queued messages kept, as AWS keeps them). It reports QoS 1
messages lost by the session (must be 0), duplicates, processes that died (must be none), RSS and
open descriptors at the start and the end (of the clients, and of the stack's `iotnotify local` process
and its Mosquitto over each of their two lives: up to the restart, and after it, primed), reconnections,
the longest gap between deliveries, and messages the throttle discarded.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 50] [--json FILE]

tests/test_soak.py runs it for 2 minutes (pytest -m soak); bench/README.md has a 30-minute run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from compare import free_port, user_environment

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))
TOPIC, RPC = "soak/data", "soak/rpc"
CONNECTION_DURATION, KEY_LIFETIME = 20, 60  # s: AWS's 24 hours and up to 1 hour, compressed
WARM_UP = 15.0  # s before the first RSS and descriptor sample
DRAIN = 120.0  # s the subscriber may take to catch up once the senders stopped
STACK = ("local", "mosquitto")  # the stack's processes, new after the restart
LOGS = ("subscribe", "tail", "respond", "agent", "direct", "through-agent")  # processes whose stderr is kept


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open file descriptors) of a process."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]), len(os.listdir(f"/proc/{pid}/fd"))


class Lines:
    """The lines a process writes on stdout, each with when it arrived (a reader thread)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.arrivals.append((time.monotonic(), line.decode(errors="replace").rstrip("\n")))


class Stream:
    """A `send -l` fed numbered lines (PREFIX0, PREFIX1, ...) at `rate` a second until stopped."""

    def __init__(self, process: subprocess.Popen[bytes], prefix: str, rate: float) -> None:
        self.process, self.prefix, self.rate, self.written = process, prefix, rate, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        assert self.process.stdin is not None
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + self.written / self.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
                continue
            try:
                self.process.stdin.write(f"{self.prefix}{self.written}\n".encode())
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            self.written += 1

    def stop(self) -> int:
        """Stop writing, end the input, and return the sender's exit code (0: all acknowledged)."""
        self._stop.set()
        self._thread.join()
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(120)


class Soak:
    """The stack and the long-running clients of one soak, and what they did."""

    def __init__(self, minutes: float, rate: float, work: Path, duration: float = CONNECTION_DURATION,
                 debug: bool = False) -> None:
        self.minutes, self.rate, self.work, self.duration = minutes, rate, work, duration
        self.debug = ["--debug"] if debug else []  # the senders' wire trace, in direct.err and through-agent.err
        self.env = {**user_environment(), "XDG_CACHE_HOME": str(work / "cache"), "XDG_CONFIG_HOME": str(work / "config"),
                    "XDG_STATE_HOME": str(work / "xdg-state"), "XDG_RUNTIME_DIR": str(work / "run"),
                    "IOTNOTIFY_PROFILE": "local"}
        (work / "run").mkdir(mode=0o700)
        self.errs = {name: (work / f"{name}.err").open("wb") for name in LOGS}
        self.stack_log = (work / "stack.log").open("ab")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports = [str(free_port()) for _ in range(4)]
        self.stack = self._stack()
        self.began = time.monotonic()  # when the streams began (set by _go)
        self.unanswered: list[str] = []  # requests that got no reply: when, and why (the first 10)
        # the stack's processes are new after the restart: each is measured over its own life
        self.before_restart: dict[str, tuple[int, int]] = {}
        self.after_restart: dict[str, tuple[int, int]] = {}
        self.stack_rss: list[int] = []  # KiB, `iotnotify local`'s, each minute (a new process after the restart)

    def start(self, name: str, *args: str, stdin: int = subprocess.DEVNULL,
              stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([IOTNOTIFY, *args], stdin=stdin, stdout=stdout, stderr=self.errs[name],
                                   env=self.env, start_new_session=True)
        self.processes.append(process)
        return process

    def _stack(self) -> subprocess.Popen[bytes]:
        """`iotnotify local` as a user runs it (its log appended to stack.log), once its keys
        endpoint answers and it wrote the `local` profile the clients use."""
        port, keys, mqtt, ws = self.ports
        stack = subprocess.Popen([IOTNOTIFY, "local", "--port", port, "--keys-port", keys, "--mqtt-port", mqtt,
                                  "--ws-port", ws, "--lifetime", str(KEY_LIFETIME), "--topics", "soak/*",
                                  "--any-client-id", "--max-connection-duration", f"{self.duration:g}"],
                                 stdout=subprocess.DEVNULL, stderr=self.stack_log, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{keys}/iot/keys", timeout=5):
                    pass
                if f"127.0.0.1:{keys}/" in (self.work / "config" / "iotnotify" / "config.toml").read_text():
                    return stack  # the profile is written after the endpoint answers
            except (urllib.error.URLError, OSError):  # (FileNotFoundError: no profile yet)
                pass
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"iotnotify local did not start (see {self.work / 'stack.log'})")
            time.sleep(0.2)

    def _broker(self) -> int | None:
        """The pid of the stack's Mosquitto (a child of `iotnotify local`)."""
        children = Path(f"/proc/{self.stack.pid}/task/{self.stack.pid}/children")
        for pid in children.read_text().split() if children.exists() else ():
            if Path(f"/proc/{pid}/comm").read_text().strip() == "mosquitto":
                return int(pid)
        return None

    def sampled(self, long_running: dict[str, subprocess.Popen[bytes]]) -> dict[str, tuple[int, int]]:
        """RSS and descriptors of the clients, the stack's process and its Mosquitto."""
        found = {name: sample(p.pid) for name, p in long_running.items() if p.poll() is None}
        if self.stack.poll() is None:
            found["local"] = sample(self.stack.pid)
        if (broker := self._broker()) is not None:
            found["mosquitto"] = sample(broker)
        return found

    def _stop_stack(self) -> None:
        if self.stack.poll() is None:
            os.killpg(self.stack.pid, signal.SIGINT)
            try:
                self.stack.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.stack.pid, signal.SIGKILL)
                self.stack.wait()

    def restart(self) -> None:
        """The broker, the front and the endpoint go, and come back on the same ports and state."""
        self._stop_stack()
        time.sleep(2)
        self.stack = self._stack()

    def run(self) -> dict[str, object]:
        agent = self.start("agent", "agent", "start", stdout=subprocess.DEVNULL)
        subscriber = self.start("subscribe", "subscribe", TOPIC, "--session", "soak-subscriber", "-q", "1")
        tail = self.start("tail", "tail", TOPIC)
        responder = self.start("respond", "respond", RPC, "--session", "soak-responder", "--", "cat",
                               stdout=subprocess.DEVNULL)
        long_running = {"subscribe": subscriber, "tail": tail, "respond": responder, "agent": agent}
        received, tailed = Lines(subscriber), Lines(tail)
        time.sleep(3)  # subscribed, and the agent serving
        streams = [Stream(self.start("direct", *self.debug, "send", "-l", "-q", "1", "--no-agent", TOPIC, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL), "a", self.rate / 2),
                   Stream(self.start("through-agent", *self.debug, "send", "-l", "-q", "1", TOPIC, stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL), "b", self.rate / 2)]
        first, asked, answered, died = self._go(long_running)
        unanswered = self.unanswered
        senders = [stream.stop() for stream in streams]
        sent = {stream.prefix: stream.written for stream in streams}
        wanted = {f"{prefix}{n}" for prefix, count in sent.items() for n in range(count)}
        deadline = time.monotonic() + DRAIN
        while time.monotonic() < deadline and not wanted <= {line for _, line in received.arrivals}:
            time.sleep(0.5)
        last = self.sampled(long_running)
        died = sorted({*died, *(name for name, p in long_running.items() if p.poll() is not None)})
        for process in long_running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        exits = {name: p.wait(30) for name, p in long_running.items()}
        lines = [line for _, line in received.arrivals]
        times = [at for at, line in received.arrivals if line in wanted]
        return {
            "minutes": self.minutes, "rate": self.rate, "connection_duration": self.duration,
            "sent": sum(sent.values()), "senders_exit": senders,
            "lost": len(wanted - set(lines)), "duplicates": len(lines) - len(set(lines)),
            "lost_by_stream": {prefix: len({f"{prefix}{n}" for n in range(count)} - set(lines))
                               for prefix, count in sent.items()},
            "tail_received": len({line.split(" ", 1)[-1] for _, line in tailed.arrivals} & wanted),
            "requests": asked, "answered": answered, "unanswered": unanswered, "died": died, "exits": exits,
            "rss_kib": self._spans(first, last, 0), "fds": self._spans(first, last, 1),
            "longest_gap_s": max((b - a for a, b in itertools.pairwise(times)), default=0.0),
            "stack_rss_per_minute_mib": [round(kib / 1024, 1) for kib in self.stack_rss],
            "per_minute": [sum(1 for at in times if m * 60 <= at - self.began < (m + 1) * 60)
                           for m in range(int((max(times, default=self.began) - self.began) // 60) + 1)],
        }

    def _spans(self, first: dict[str, tuple[int, int]], last: dict[str, tuple[int, int]],
               which: int) -> dict[str, tuple[int, int]]:
        """(start, end) of RSS (`which` 0) or descriptors (1) of each process; the stack's two lives
        apart: `local` and `mosquitto` up to the restart, `local'` and `mosquitto'` after it."""
        spans = {}
        for name in first:
            if name in STACK and self.before_restart:
                spans[name] = (first[name][which], self.before_restart.get(name, (0, 0))[which])
                spans[name + "'"] = (self.after_restart.get(name, (0, 0))[which], last.get(name, (0, 0))[which])
            else:
                spans[name] = (first[name][which], last.get(name, (0, 0))[which])
        return spans

    def _go(self, long_running: dict[str, subprocess.Popen[bytes]]) -> tuple[dict[str, tuple[int, int]], int, int,
                                                                             list[str]]:
        """The soak's minutes: a request every 5 s, a sample after WARM_UP, the restart halfway;
        (the first sample, requests asked, answered, processes dead by then)."""
        began, asked, answered, first, restarted = time.monotonic(), 0, 0, {}, None
        self.began = began
        while time.monotonic() - began < self.minutes * 60:
            elapsed = time.monotonic() - began
            if not first and elapsed >= WARM_UP:
                first = self.sampled(long_running)
            if restarted is None and elapsed >= self.minutes * 30:
                self.before_restart = self.sampled(long_running)  # the first stack's last
                self.restart()
                restarted = elapsed
            if restarted is not None and not self.after_restart and elapsed >= restarted + WARM_UP:
                self.after_restart = self.sampled(long_running)  # the second stack's first
            if elapsed >= len(self.stack_rss) * 60 and self.stack.poll() is None:
                self.stack_rss.append(sample(self.stack.pid)[0])  # the stack's RSS a minute: its shape
            asked += 1
            reply = subprocess.run([IOTNOTIFY, "request", RPC, f"ping{asked}", "-W", "20", "--response-topic",
                                    f"soak/reply/{asked}"], env=self.env, capture_output=True, timeout=60)
            ok = reply.returncode == 0 and reply.stdout.strip() == f"ping{asked}".encode()
            answered += ok
            if not ok and len(self.unanswered) < 10:  # when, and why: its exit code and last line
                said = reply.stderr.decode(errors="replace").strip().splitlines()
                self.unanswered.append(f"{elapsed:.0f} s: exit {reply.returncode}: {said[-1] if said else ''}")
            time.sleep(max(0.0, 5 - (time.monotonic() - began - elapsed)))
        return first, asked, answered, [name for name, p in long_running.items() if p.poll() is not None]

    def close(self) -> dict[str, object]:
        """Stop whatever is left (a soak that failed too), and what the logs say."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._stop_stack()
        for file in [*self.errs.values(), self.stack_log]:
            file.close()
        logged = (self.work / "stack.log").read_text(errors="replace").splitlines()
        stderr = {name: (self.work / f"{name}.err").read_text(errors="replace") for name in LOGS}
        return {"reconnections": {name: stderr[name].count("reconnected") for name in ("subscribe", "tail", "respond")},
                "closed_for_age": sum("connected longer than" in line for line in logged),
                "discarded_for_rate": sum(int(line.split(": ")[-1].split()[0]) for line in logged
                                          if "discarded (outbound throttle)" in line),
                "logs": str(self.work)}


def run(minutes: float, rate: float, work: Path, duration: float = CONNECTION_DURATION,
        debug: bool = False) -> dict[str, object]:
    soak = Soak(minutes, rate, work, duration, debug)
    try:
        report = soak.run()
    finally:
        closing = soak.close()
    return {**report, **closing}


def table(report: dict[str, object]) -> str:
    rss, fds = report["rss_kib"], report["fds"]
    assert isinstance(rss, dict)
    assert isinstance(fds, dict)
    died = report["died"]
    assert isinstance(died, list)
    rows = [(f"soak: {report['minutes']:g} min at {report['rate']:g} messages/s, connections closed after "
             f"{report['connection_duration']:g} s, keys of {KEY_LIFETIME} s, the stack restarted once"),
            (f"  sent {report['sent']:,} (senders' exit codes {report['senders_exit']}); subscribe --session lost "
             f"{report['lost']} {report['lost_by_stream']}, duplicates {report['duplicates']}; tail (clean session) "
             f"got {report['tail_received']:,}"),
            (f"  requests answered {report['answered']} of {report['requests']}"
             + (f" (not: {'; '.join(report['unanswered'])})" if report.get("unanswered") else "")  # type: ignore[arg-type]
             + f"; processes died: {', '.join(died) or 'none'}"),
            (f"  reconnections {report['reconnections']}; longest gap between deliveries "
             f"{report['longest_gap_s']:.1f} s; connections closed for their age {report['closed_for_age']}; "
             f"messages discarded by the outbound throttle {report['discarded_for_rate']}"),
            f"  delivered to the session per minute: {report['per_minute']}",
            (f"  iotnotify local's RSS each minute, MB (a new process after the restart): "
             f"{report['stack_rss_per_minute_mib']}"),
            f"  {'process':<10} {'RSS start':>10} {'RSS end':>9} {'fds start':>9} {'fds end':>8}"]
    for name in rss:
        (rss_start, rss_end), (fd_start, fd_end) = rss[name], fds[name]
        rows.append(f"  {name:<10} {rss_start / 1024:>8.1f}MB {rss_end / 1024:>7.1f}MB {fd_start:>9} {fd_end:>8}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=50.0, help="messages a second, both streams together")
    parser.add_argument("--connection-duration", type=float, default=CONNECTION_DURATION, metavar="S",
                        help="seconds a connection lasts (AWS: 24 hours)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--debug", action="store_true", help="the senders' wire trace in their .err files")
    args = parser.parse_args()
    report = run(args.minutes, args.rate, Path(tempfile.mkdtemp(prefix="soak-")), args.connection_duration,
                 args.debug)
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
