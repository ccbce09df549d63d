"""Each shortcut into awscrt (src/iotnotify/crt/) on and off, on rows that run under AWS IoT Core's
rules: a local stack that enforces them (100 publishes/s per connection), cached keys, medians of
--runs with the variants taking turns (each run starting with another, so that none is always first). A
shortcut earns its place by a win of 10% or more on one row.

    .venv/bin/python bench/shortcuts.py            # 7 runs of 4 variants: about 15 minutes on 2 cores
    .venv/bin/python bench/shortcuts.py --runs 3
    .venv/bin/python bench/shortcuts.py --against /tmp/old/src   # and another tree's code, all on (PYTHONPATH)
    .venv/bin/python bench/shortcuts.py --against /tmp/old/src --only against   # the two trees alone

Variants: all on; all off (IOTNOTIFY_NO_SHORTCUTS=1); each one off alone. Rows: a cold send (by
itself HTTPS, and --via mqtt), a send through a running agent (per send, in a loop of 20), publish to
receive latency (one connection subscribed to its own topic, 400 QoS 1 messages 12 ms apart: under
AWS's rate, so the client's pacing never waits), time to subscribed (process start to the
`--ready-file` a script waits for), and `send -l` of 300 lines at QoS 1 to a `subscribe`, which
AWS's rate makes 100 messages/s: each side's CPU per message (wait4's rusage, less a run of 20
lines: what one more message costs, without the process's start) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import compare  # bench/compare.py: the agent row's loop, as its table runs it

from iotnotify.crt import NAMES, SWITCH
from iotnotify.local.stack import LocalStack, StackConfig

IOTNOTIFY = str(Path(sys.executable).parent / "iotnotify")
VARIANTS = {"all on": None, "all off": "1", **{f"{name} off": name for name in NAMES}}
STREAM, SHORT, LATENCY, LOOP = 300, 20, 400, 20
SPACING = 0.012  # s between latency pings: 83 a second, under AWS's 100, so the client's pacing never waits


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], env: dict[str, str], stdin: bytes | None = None) -> tuple[float, float, float]:
    """Run to success; (wall s, CPU s, peak RSS MiB) of the process, from wait4's rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, env=env)
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def cold(env: dict[str, str], *way: str) -> float:
    return run([IOTNOTIFY, "send", "-q", "1", *way, "bench/cold", "x"], env)[0]


def subscribed(env: dict[str, str], work: Path) -> float:
    """Process start to the ready file (written once the SUBACK came)."""
    ready = work / f"ready-{time.monotonic_ns()}"
    start = time.perf_counter()
    proc = subprocess.Popen([IOTNOTIFY, "subscribe", "--ready-file", str(ready), "-C", "1", "-W", "30", "bench/sub"],
                            stdout=subprocess.DEVNULL, env=env)
    try:
        while not ready.exists():
            if proc.poll() is not None or time.perf_counter() - start > 30:
                raise RuntimeError("subscribe did not get ready")
            time.sleep(0.0005)
        return time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()


def stream(env: dict[str, str], work: Path, count: int) -> dict[str, float]:
    """`send -l` of `count` lines at QoS 1 into a `subscribe -C count`: CPU (s) and peak RSS (MiB) of
    each side."""
    ready = work / f"ready-{time.monotonic_ns()}"
    sub = subprocess.Popen([IOTNOTIFY, "subscribe", "--ready-file", str(ready), "-q", "1", "-C", str(count),
                            "-W", "60", "bench/stream"], stdout=subprocess.DEVNULL, env=env)
    try:
        wait_ready(sub, ready)
        lines = b"".join(b'{"n": %d, "v": "xxxxxxxxxxxxxxxxxxxx"}\n' % i for i in range(count))
        _wall, send_cpu, send_rss = run([IOTNOTIFY, "send", "-q", "1", "-l", "bench/stream"], env, lines)
    except BaseException:
        sub.kill()
        sub.wait()
        raise
    _pid, status, usage = os.wait4(sub.pid, 0)
    sub.returncode = os.waitstatus_to_exitcode(status)
    if sub.returncode != 0:
        raise RuntimeError(f"subscriber exited {sub.returncode}")
    return {"send CPU": send_cpu, "send RSS": send_rss,
            "subscribe CPU": usage.ru_utime + usage.ru_stime, "subscribe RSS": usage.ru_maxrss / 1024}


def wait_ready(sub: subprocess.Popen[bytes], ready: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready.exists():
        if sub.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("subscriber did not get ready")
        time.sleep(0.01)


def latency(env: dict[str, str]) -> tuple[float, float]:
    """(p50, p99) ms, measured in a process of its own (the shortcuts are decided at import)."""
    done = subprocess.run([sys.executable, __file__, "--latency-child"], env=env, check=True, capture_output=True,
                          text=True, timeout=120)
    samples = json.loads(done.stdout)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def latency_child() -> None:
    from iotnotify.keys import endpoint_source
    from iotnotify.mqtt import ConnectOptions

    try:
        from iotnotify.mqtt import open_session
    except ImportError:  # --against a tree from before the session (mqtt/session.py)
        from iotnotify.mqtt import open_connection as open_session  # type: ignore[attr-defined, no-redef]

    arrived = threading.Event()
    connection = open_session(endpoint_source(os.environ["IOTNOTIFY_ENDPOINT"], 10),
                                 ConnectOptions(ca_file=os.environ["IOTNOTIFY_CA_FILE"]),
                                 on_message=lambda _message: arrived.set())
    samples = []
    try:
        connection.subscribe(["bench/latency"], 1)
        for number in range(LATENCY + 20):
            arrived.clear()
            start = time.perf_counter()
            connection.publish("bench/latency", b"%d" % number, 1, False, lambda _code: None)
            if not arrived.wait(5):
                raise RuntimeError("a message did not come back")
            if number >= 20:  # the first ones warm up
                samples.append(time.perf_counter() - start)
            time.sleep(SPACING)
    finally:
        connection.disconnect()
    print(json.dumps(samples))


ROWS = ["cold send (HTTPS), s", "cold send --via mqtt, s", "send through the agent, per send, s",
        "latency p50, ms", "latency p99, ms", "time to subscribed, s",
        "send -l at 100 msg/s: CPU per message, us", "subscribe at 100 msg/s: CPU per message, us",
        "send -l peak RSS, MiB", "subscribe peak RSS, MiB"]


def measure(env: dict[str, str], work: Path) -> dict[str, float]:
    p50, p99 = latency(env)
    flow, short = stream(env, work, STREAM), stream(env, work, SHORT)
    per_message = {side: (flow[side] - short[side]) / (STREAM - SHORT) * 1e6 for side in ("send CPU", "subscribe CPU")}
    return {ROWS[0]: cold(env), ROWS[1]: cold(env, "--via", "mqtt"), ROWS[2]: compare.agent_loop(env, LOOP), ROWS[3]: p50,
            ROWS[4]: p99, ROWS[5]: statistics.median(subscribed(env, work) for _ in range(3)),
            ROWS[6]: per_message["send CPU"], ROWS[7]: per_message["subscribe CPU"], ROWS[8]: flow["send RSS"],
            ROWS[9]: flow["subscribe RSS"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--against", metavar="SRC", help="another tree's src/ as one more variant (all on)")
    parser.add_argument("--only", metavar="VARIANT,...", help="these variants alone (all on is always one): "
                        "'--only against' compares two trees")
    parser.add_argument("--latency-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_child:
        latency_child()
        return
    work = Path(tempfile.mkdtemp(prefix="iotnotify-shortcuts-"))
    stack = LocalStack(StackConfig(work / "state", free_port(), free_port(), free_port(), topics=("bench/*",)))
    stack.start()
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", SWITCH)}
    base.update({"XDG_CACHE_HOME": str(work / "cache"), "XDG_CONFIG_HOME": str(work / "config"),
                 "IOTNOTIFY_ENDPOINT": stack.endpoint_url, "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)})
    subprocess.run([IOTNOTIFY, "keys"], env=base, check=True, capture_output=True)  # cached, as a user's are
    envs = {variant: base if switch is None else {**base, SWITCH: switch} for variant, switch in VARIANTS.items()}
    if args.against:
        envs["against"] = {**base, "PYTHONPATH": args.against}
    if args.only:
        envs = {v: env for v, env in envs.items() if v == "all on" or v in args.only.split(",")}
    samples: dict[str, dict[str, list[float]]] = {v: {row: [] for row in ROWS} for v in envs}
    try:
        for number in range(args.runs):
            names = list(envs)
            names = names[number % len(names):] + names[:number % len(names)]  # each run starts elsewhere
            for variant in names:  # in turns: a slow moment of the machine hits them all
                env = envs[variant]
                for row, value in measure(env, work).items():
                    samples[variant][row].append(value)
            print(f"run {number + 1} of {args.runs} done", file=sys.stderr)
    finally:
        stack.stop()
    print_table({v: {row: statistics.median(values) for row, values in rows.items()} for v, rows in samples.items()},
                args.runs)
    Path(work / "raw.json").write_text(json.dumps(samples))
    print(f"every run's figures: {work / 'raw.json'}", file=sys.stderr)


def print_table(medians: dict[str, dict[str, float]], runs: int) -> None:
    on = medians["all on"]
    print(f"shortcuts on and off, under AWS IoT Core's rules: medians of {runs} runs "
          "(in brackets: off / all on; above 1.10 the shortcut earns its place)")
    names = list(medians)
    print(f"{'':44}" + "".join(f"{v:>22}" for v in names))
    for row in ROWS:
        cells: list[str] = []
        for variant in names:
            value = medians[variant][row]
            ratio = value / on[row] if on[row] else float("nan")
            cells.append(f"{value:.4g}" if variant == "all on" else f"{value:.4g} ({ratio:.2f})")
        print(f"{row:44}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
