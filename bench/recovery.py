#!/usr/bin/env python3
"""Recovery, under AWS IoT Core's rules: the network cut for --cut seconds under running
subscribers (persistent sessions, QoS 1) and senders (`send -l`, QoS 1), each behind a relay of
--rtt ms round trip; the time from the network's return to each one's next delivered message,
and what was lost. Then the same when the broker ends every connection, as AWS IoT Core does a
WebSocket connection after 24 hours (the stack's --max-connection-duration, shortened).

    .venv/bin/python bench/recovery.py [--cut 5] [--rtt 50] [--runs 3]

Subscribers: iotnotify `subscribe --session`, mosquitto_sub (-c, over TLS), MQTT.js `mqtt sub
--no-clean` (over wss), all at once, fed 20 messages a second at QoS 1 from the broker's own side
(not cut). Senders: iotnotify `send -l -q 1` and mosquitto_pub `-l -q 1`, a line every 50 ms, each
watched by a subscriber on the broker's own side. Cuts (delay.py): "stall" holds every byte until
the network returns (TCP at best); "reset" ends every connection and refuses new ones meanwhile.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import IOTNOTIFY, MQTT_JS, Bench  # noqa: E402
from delay import Relay  # noqa: E402

RATE = 20  # messages a second each feed writes (AWS allows 100 a connection)
BEFORE, AFTER, DRAIN = 3.0, 8.0, 6.0  # s of feed before the cut and after the network returns; then to drain


@dataclass
class Watched:
    """A process whose stdout lines (message numbers) are stamped as they arrive."""

    name: str
    proc: subprocess.Popen[bytes]
    arrivals: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            try:
                self.arrivals.append((time.monotonic(), int(line.split()[-1])))
            except (ValueError, IndexError):
                pass  # a marker


class Feed:
    """Numbers 0, 1, 2... written to `proc`'s stdin, RATE a second, from a thread, until stop()."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc, self.sent, self._stop = proc, 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            try:
                self.proc.stdin.write(b"%d\n" % self.sent)  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
            except OSError:
                return
            self.sent += 1
            self._stop.wait(max(start + self.sent / RATE - time.monotonic(), 0))

    def stop(self) -> None:
        self._stop.set()


def outcome(watched: Watched, sent: int, back: float) -> dict[str, float | int | None]:
    """What `watched` received: seconds from `back` to its first arrival after it (None: no cut),
    the longest silence between two arrivals, and how many of the `sent` never arrived, or twice."""
    after = [at for at, _ in watched.arrivals if at >= back]
    numbers = [n for _, n in watched.arrivals]
    times = [at for at, _ in watched.arrivals]
    return {"recovery": after[0] - back if after else None,
            "silence": max((b - a for a, b in itertools.pairwise(times)), default=None),
            "lost": len(set(range(sent)) - set(numbers)), "duplicates": len(numbers) - len(set(numbers))}


def session_run(bench: Bench, rtt: float, mode: str, cut: float, run: int) -> dict[str, dict]:
    """One cut under every client at once (mode "duration": no cut, the stack ends each connection
    at its age); each one's outcome."""
    wss, tls = Relay(bench.stack.config.wss_port, rtt / 2), Relay(bench.tls_port, rtt / 2)
    with wss, tls:
        bench.wss, bench.tls = wss.port, tls.port
        stack = bench.stack
        stack.origins += tuple(f"https://{name}:{wss.port}" for name in ("127.0.0.1", "localhost"))
        stack.issuer.port = wss.port
        env = {**bench.env, "XDG_CACHE_HOME": str(bench.work / f"cache-{wss.port}")}
        subprocess.run([IOTNOTIFY, "keys"], env=env, check=True, capture_output=True)  # cached: keys for the relay
        stack.issuer.port = stack.config.wss_port
        owner = f"recovery-{mode}"
        topic = f"bench/recovery/{run}"
        pipe = {"stdout": subprocess.PIPE, "stderr": None if os.environ.get("BENCH_STDERR") else subprocess.DEVNULL}
        subscribers = [
            Watched("iotnotify subscribe --session", subprocess.Popen(
                [IOTNOTIFY, "subscribe", "--session", f"{owner}-sub{run}", "-q", "1", f"{topic}/sub"], env=env,
                **pipe)),
            Watched("mosquitto_sub -c (tls)", subprocess.Popen(
                [*bench.mosquitto("mosquitto_sub"), "-c", "-i", f"{owner}-mosq{run}", "-q", "1", "-t",
                 f"{topic}/sub"], **pipe)),
            Watched("MQTT.js sub --no-clean (wss)", subprocess.Popen(
                [*bench.mqtt_js("sub"), "--no-clean", "-q", "1", "-t", f"{topic}/sub"], **pipe)),
        ]
        observe = {"stdin": subprocess.DEVNULL, **pipe}
        sender_topics = {"iotnotify send -l": f"{topic}/ours", "mosquitto_pub -l (tls)": f"{topic}/mosq"}
        observers = {name: Watched(name, subprocess.Popen(["mosquitto_sub", "-p", bench.plain, "-q", "1", "-t", t],
                                                          **observe)) for name, t in sender_topics.items()}
        time.sleep(3)  # every subscriber connected and subscribed (checked below: each gets the first messages)
        feeds = [Feed(subprocess.Popen(["mosquitto_pub", "-p", bench.plain, "-q", "1", "-l", "-t", f"{topic}/sub"],
                                       stdin=subprocess.PIPE))]
        senders = [subprocess.Popen([IOTNOTIFY, "send", "-l", "-q", "1", sender_topics["iotnotify send -l"]],
                                    stdin=subprocess.PIPE, env=env, stderr=subprocess.PIPE),
                   subprocess.Popen([*bench.mosquitto("mosquitto_pub"), "-l", "-q", "1", "-i", f"{owner}-pub{run}",
                                     "-t", sender_topics["mosquitto_pub -l (tls)"]], stdin=subprocess.PIPE,
                                    stderr=subprocess.PIPE)]
        feeds += [Feed(sender) for sender in senders]
        time.sleep(BEFORE)
        if mode == "duration":  # every connection ended at its age once or more meanwhile
            back = float("inf")
            time.sleep(stack.config.max_connection_duration * 2)
        else:
            back = max(wss.cut(cut, mode), tls.cut(cut, mode))
            time.sleep(cut + AFTER)
        for feed in feeds:
            feed.stop()
        time.sleep(DRAIN)
        results = {w.name: outcome(w, feeds[0].sent, back) for w in subscribers}
        for w in subscribers:
            if w.proc.poll() is not None:
                results[w.name]["exited"] = str(w.proc.returncode)
        for (name, w), feed in zip(observers.items(), feeds[1:], strict=True):
            results[name] = outcome(w, feed.sent, back)
        if mode == "duration":  # mosquitto's clients go straight to Mosquitto: the front never ends theirs
            results = {name: result for name, result in results.items() if not name.startswith("mosquitto")}
        for number, sender in enumerate(senders):
            if sender.poll() is not None:
                said = sender.stderr.read().decode(errors="replace").strip().splitlines()  # type: ignore[union-attr]
                name = list(sender_topics)[number]
                if name in results:
                    results[name]["exited"] = f"{sender.returncode}: {said[-1] if said else ''}"
        for proc in [w.proc for w in subscribers] + [w.proc for w in observers.values()] + senders + \
                [f.proc for f in feeds]:
            proc.kill()
            proc.wait()
        bench.wss, bench.tls = stack.config.wss_port, bench.tls_port
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cut", type=float, default=5.0, help="seconds the network is gone")
    parser.add_argument("--rtt", type=float, default=50.0, help="round trip in ms behind the relays")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="stall,reset,duration")
    parser.add_argument("--duration", type=float, default=12.0,
                        help="the stack's --max-connection-duration in the duration rows (AWS: 24 hours)")
    args = parser.parse_args()
    if shutil.which("mosquitto_sub") is None or not Path(MQTT_JS).exists():
        sys.exit("missing: mosquitto clients or MQTT.js: run bench/run (after ./scripts/setup)")
    table: dict[str, dict[str, list[dict]]] = {}
    for mode in args.modes.split(","):
        # any client id: a --session name stays the keys' own after they are fetched anew
        bench = Bench(Path(tempfile.mkdtemp()), 0, permissive=False, any_client_id=True,
                      **({"max_connection_duration": args.duration} if mode == "duration" else {}))
        bench.start()
        try:
            for run in range(args.runs):
                for name, result in session_run(bench, args.rtt / 1000, mode, args.cut, run).items():
                    table.setdefault(mode, {}).setdefault(name, []).append(result)
        finally:
            bench.stack.stop()
    show(table, args)


def show(table: dict[str, dict[str, list[dict]]], args: argparse.Namespace) -> None:
    print(f"recovery under AWS IoT Core's rules ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores): the network "
          f"cut for {args.cut:g} s at {args.rtt:g} ms RTT; medians of {args.runs} runs")
    print(f"{'cut':<8} {'client':<30} {'to next message':>15} {'runs':>18} {'longest silence':>15} {'lost':>5} "
          f"{'dup':>4}")
    for mode, clients in table.items():
        for name, results in clients.items():
            times = [r["recovery"] for r in results] if mode != "duration" else []
            known = [t for t in times if t is not None]
            median = f"{statistics.median(known):.2f} s" if known else "never" if times else "-"
            runs = " ".join(f"{t:.2f}" if t is not None else "-" for t in times)
            silences = [r["silence"] for r in results if r["silence"] is not None]
            silence = f"{statistics.median(silences):.2f} s" if silences else "-"
            exited = "; ".join(r["exited"] for r in results if "exited" in r)
            print(f"{mode:<8} {name:<30} {median:>15} {runs:>18} {silence:>15} {max(r['lost'] for r in results):>5} "
                  f"{max(r['duplicates'] for r in results):>4}" + (f"  exited {exited}" if exited else ""))
    print("to next message: from the network's return to the next message the subscriber received (for a sender,"
          " the next of its messages a subscriber on the broker's side received); longest silence: between two"
          " arrivals (the feed sends one each 50 ms); lost, dup: the most in a run; exited: the client ended.")
    if "duration" in table:
        print(f"duration: the stack ends each wss connection at its first message after {args.duration:g} s, as AWS IoT"
              " Core does after 24 hours (mosquitto_sub and _pub connect to Mosquitto itself: not ended).")


if __name__ == "__main__":
    main()
