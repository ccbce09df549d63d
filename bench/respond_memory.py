#!/usr/bin/env python3
"""Memory of `iotnotify respond` under a flood of requests while its command is busy (issue 26, item
2): RSS of a real `respond` process after N requests of 120 KB (default 800) whose CMD sleeps,
for QoS 0 and QoS 1 requests, through a local stack (--permissive: the flood arrives in seconds
rather than at AWS's 512 KB/s; the bound does not depend on the rate).

    .venv/bin/python bench/respond_memory.py [--requests 800] [--size 120000]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import free_port, user_environment
from tail_memory import rss_kib

from iotnotify.local.stack import LocalStack, StackConfig

IOTNOTIFY = str(Path(sys.executable).with_name("iotnotify"))


def flood(env: dict[str, str], work: Path, qos: int, requests: int, size: int) -> tuple[int, int, int, int]:
    """(RSS before, RSS after, peak RSS, requests refused) of a responder whose CMD sleeps while
    `requests` requests of `size` bytes arrive."""
    ready = work / f"ready-{qos}"
    respond = subprocess.Popen([IOTNOTIFY, "respond", "bench/rpc", "--ready-file", str(ready), "-q", str(qos),
                                "--quiet", "--", "sh", "-c", "sleep 30"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    while not ready.exists():
        if respond.poll() is not None:
            raise SystemExit(f"respond exited: {respond.stderr.read().decode() if respond.stderr else ''}")
        time.sleep(0.05)
    before = rss_kib(respond.pid)[0]
    record = json.dumps({"topic": "bench/rpc", "payload": "x" * size, "qos": qos, "response_topic": "bench/reply"})
    subprocess.run([IOTNOTIFY, "send", "--records", "--no-agent", "--timeout", "60"],
                   input=(record + "\n").encode() * requests, env=env, check=False, capture_output=True)
    time.sleep(3)  # what is on its way is in
    after, peak = rss_kib(respond.pid)
    respond.kill()
    _, err = respond.communicate(timeout=10)
    return before, after, peak, err.decode().count("requests are waiting already")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--size", type=int, default=120_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    stack = LocalStack(StackConfig(work, free_port(), free_port(), free_port(), permissive=True))
    stack.start()
    env = {**user_environment(), "XDG_CACHE_HOME": str(work / "cache"), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
           "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}
    try:
        rows = [(qos, *flood(env, work, qos, args.requests, args.size)) for qos in (0, 1)]
    finally:
        stack.stop()
    print(f"{args.requests} requests of {args.size:,} bytes ({args.requests * args.size / 2**20:.0f} MiB), "
          "CMD asleep, --queue 100 (the default)")
    print(f"{'QoS':>3} {'RSS before MiB':>15} {'after MiB':>10} {'peak MiB':>9} {'refused':>8}")
    for qos, before, after, peak, refused in rows:
        print(f"{qos:>3} {before / 1024:>15.1f} {after / 1024:>10.1f} {peak / 1024:>9.1f} {refused:>8}")


if __name__ == "__main__":
    main()
