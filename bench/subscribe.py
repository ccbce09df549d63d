"""Subscribe to a pipe under a flood: compare.py's subscribe rows alone, the subscribers taking
turns, repeated to see how stable the ratios are.

    .venv/bin/python bench/subscribe.py                 # 5 runs, 100,000 messages
    .venv/bin/python bench/subscribe.py --runs 7 --tables 3
    .venv/bin/python bench/subscribe.py --flood mosquitto_pub   # the flood before Round two, 11

Each table: medians of --runs of each subscriber (iotnotify, iotnotify --json, MQTT.js's `mqtt
sub`, mosquitto_sub), the rate at which it wrote the flood to a pipe and its own CPU per message;
under it, each run's ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare


def print_per_run(runs: int) -> None:
    """Each run's ratios (the subscribers took turns in it): how stable the table's medians are."""
    plain = compare.RAW.get("subscribe to a pipe", {})
    json_lines = compare.RAW.get("subscribe --json to a pipe", {})
    pairs = [(f"iotnotify / {peer}", plain.get(compare.OURS, []), plain.get(peer, []))
             for peer in (compare.MQTTJS, compare.MOSQUITTO)]
    pairs.append(("iotnotify --json / iotnotify", json_lines.get(compare.OURS + " --json", []), plain.get(compare.OURS, [])))
    for label, ours, theirs in pairs:
        if len(ours) != runs or len(theirs) != runs:  # a failed run leaves nothing to pair it with
            print(f"per run, {label}: a run failed, no pairing")
            continue
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(f"per run, {label}: " + " ".join(f"{r:.2f}x" for r in ratios) + f" (lowest {min(ratios):.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tables", type=int, default=1, help="tables, one after another on the same stack")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--flood", choices=("stream", "mosquitto_pub"), default="stream",
                        help="the publisher: one stream of packets written by this process (flood.py), or "
                             "`mosquitto_pub -l` as before Round two, 11")
    args = parser.parse_args()
    bench = compare.Bench(Path(tempfile.mkdtemp(prefix="iotnotify-subscribe-")), args.messages)
    bench.flood_tool = args.flood
    bench.start()
    try:
        for table in range(args.tables):
            bench.cpu.clear()
            rows = compare.subscribe_rows(bench, args.runs)
            print(f"table {table + 1} of {args.tables}: medians of {args.runs}, {args.messages:,} messages,"
                  f" flood: {args.flood}")
            compare.print_table(rows)
            print_per_run(args.runs)
    finally:
        bench.stack.stop()


if __name__ == "__main__":
    main()
