"""The cold send, one message at QoS 1 with cached keys, each way iotnotify has (by itself: HTTPS;
`--via mqtt`) against paho-mqtt, on loopback and across a delayed network, medians of --runs, the
clients taking turns; the round trips each spends: (far - near) / RTT.

    .venv/bin/python bench/cold.py              # 9 runs, 50 ms RTT
    .venv/bin/python bench/cold.py --runs 15 --rtt 100

A short run of compare.py's cold rows (the same stack, relay and commands) for the question "which
way should a one-off send take"; compare.py has the whole table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare

WAYS: dict[str, Callable[[compare.Bench], list[str]]] = {
    "iotnotify (HTTPS)": lambda b: b.sender(compare.OURS, "bench/cold", "1", "x"),
    "iotnotify --via mqtt": lambda b: [*b.sender(compare.OURS, "bench/cold", "1", "x"), "--via", "mqtt"],
    "paho-mqtt": lambda b: b.sender(compare.PAHO, "bench/cold", "1", "x"),
}


def row(bench: compare.Bench, env: dict[str, str], runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(runs):
        for way, command in WAYS.items():  # in turns: a slow moment of the machine hits every way
            samples[way].append(compare.timed(command(bench), env if way.startswith("iotnotify") else bench.env))
    return {way: statistics.median(values) for way, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rtt", type=float, default=50, help="round trip of the delayed network, ms")
    args = parser.parse_args()
    rtt = args.rtt / 1000
    bench = compare.Bench(Path(tempfile.mkdtemp(prefix="iotnotify-cold-")), 10)
    bench.start()
    try:
        near = row(bench, bench.env, args.runs)
        wss, tls, env = bench.delayed(rtt)
        with wss, tls:
            bench.wss, bench.tls = wss.port, tls.port
            far = row(bench, env, args.runs)
    finally:
        bench.stack.stop()
    paho = "paho-mqtt"
    print(f"cold send, QoS 1, cached keys: medians of {args.runs}, seconds (ratio: paho's / this)")
    print(f"{'':24}{'loopback':>18}{f'{args.rtt:g} ms RTT':>18}{'round trips':>14}")
    for way in WAYS:
        cells = [f"{near[way]:.3f} ({near[paho] / near[way]:.2f}x)", f"{far[way]:.3f} ({far[paho] / far[way]:.2f}x)"]
        print(f"{way:24}{cells[0]:>18}{cells[1]:>18}{(far[way] - near[way]) / rtt:>14.1f}")


if __name__ == "__main__":
    main()
