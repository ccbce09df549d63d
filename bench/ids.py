#!/usr/bin/env python3
"""What each message's `iotnotify-id` (a user property of 12 + 32 bytes, added by `send` over MQTT
5) costs a stream: `send -l` with and without `--no-id`, and mosquitto_pub (TLS) as the reference,
on one permissive local stack, in one run; a printed table.

    .venv/bin/python bench/ids.py [--messages 100000] [--runs 3]

Medians of the runs, in messages a second (higher is better), and each row's ratio to `send -l
--no-id` on the same line (1.00: no cost). Permissive: the figures measure the client, not AWS IoT
Core's 100 messages a second per connection, under which the id costs nothing one can see.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from compare import IOTNOTIFY, Bench, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="bench-ids-")), args.messages)
    bench.start()
    try:
        rows = []
        for qos in ("0", "1"):
            clients = {
                "send -l --no-id": [IOTNOTIFY, "send", "--qos", qos, "bench/ids", "-l", "--no-id"],
                "send -l (ids)": [IOTNOTIFY, "send", "--qos", qos, "bench/ids", "-l"],
                "mosquitto_pub -l": [*bench.mosquitto("mosquitto_pub"), "-q", qos, "-t", "bench/ids", "-l"],
            }
            rates = {name: args.messages / statistics.median(timed(argv, bench.env, bench.lines)
                                                              for _ in range(args.runs))
                     for name, argv in clients.items()}
            rows.append((qos, rates))
    finally:
        bench.stack.stop()
    names = list(rows[0][1])
    print(f"send -l of {args.messages:,} lines on a permissive local stack, medians of {args.runs} runs, msg/s "
          "(ratio to --no-id)")
    print(f"{'QoS':<5}" + "".join(f"{name:>28}" for name in names))
    for qos, rates in rows:
        base = rates["send -l --no-id"]
        print(f"{qos:<5}" + "".join(f"{rates[name]:>18,.0f} ({rates[name] / base:4.2f})" for name in names))


if __name__ == "__main__":
    main()
