"""Subscribe to a pipe under a flood: compare.py's subscribe rows alone, the subscribers taking
turns, repeated to see how stable the ratios are.

    .venv/bin/python bench/subscribe.py                 # 5 runs, 100,000 messages
    .venv/bin/python bench/subscribe.py --runs 7 --tables 3

Each table: medians of --runs of each subscriber (iotnotify, iotnotify --json, MQTT.js's `mqtt
sub`, mosquitto_sub), the rate at which it wrote the flood to a pipe and its own CPU per message.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tables", type=int, default=1, help="tables, one after another on the same stack")
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    bench = compare.Bench(Path(tempfile.mkdtemp(prefix="iotnotify-subscribe-")), args.messages)
    bench.start()
    try:
        for table in range(args.tables):
            bench.cpu.clear()
            rows = compare.subscribe_rows(bench, args.runs)
            print(f"table {table + 1} of {args.tables}: medians of {args.runs}, {args.messages:,} messages")
            compare.print_table(rows)
    finally:
        bench.stack.stop()


if __name__ == "__main__":
    main()
