#!/usr/bin/env python3
"""The keys endpoint: what the Lambda ships and costs, and what the local one serves.

    .venv/bin/python bench/keys_endpoint.py [--runs 9] [--clients 50] [--requests 40]

- the function's package: files and zipped bytes, the whole package (before issue 19's
  `deploy-template`, CodeUri was the package) against function/ as `deploy-template` writes it;
- the handler's cold import: a fresh interpreter importing iotnotify.server.handler from each
  (this machine's Python; Lambda's python3.12 is not on it), boto3 included, as a cold start pays;
- a warm request: the handler's answer to GET /iot/keys against moto (iot:DescribeEndpoint cached
  per container, sts:AssumeRole each request), in-process;
- the local endpoint (`iotnotify local`'s, under AWS's rules): --clients clients at once, each
  making --requests GETs, a connection each (as the page's fetch without keep-alive): requests/s,
  p50 and p99, and the endpoint's threads at the peak (ThreadingHTTPServer: one a connection).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare import free_port  # noqa: E402

from iotnotify import deploy  # noqa: E402
from iotnotify.local.stack import LocalStack, StackConfig  # noqa: E402

IMPORT = "import time; t = time.perf_counter(); import iotnotify.server.handler; print(time.perf_counter() - t)"


def zipped(root: Path, files: list[Path]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(root / path, str(path))
    return len(buffer.getvalue())


def package_rows(function: Path) -> list[tuple[str, int, int, float]]:
    """(what, files, zipped bytes, median cold import s) for the whole package and function/."""
    whole_root = deploy.PACKAGE.parent
    whole = sorted(p.relative_to(whole_root) for p in deploy.PACKAGE.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    ours = sorted(p.relative_to(function) for p in function.rglob("*") if p.is_file())
    return [("whole package (before issue 19)", len(whole), zipped(whole_root, whole), 0.0),
            ("function/ (deploy-template)", len(ours), zipped(function, ours), 0.0)]


def cold_import(path: Path, runs: int) -> float:
    """Median seconds a fresh interpreter takes to import the handler with only `path` (and the
    interpreter's site-packages, for boto3) on its path, no bytecode cache (Lambda's code is read-only)."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory() as scratch:
        samples = [float(subprocess.run([sys.executable, "-c", IMPORT], env=env, cwd=scratch, check=True,
                                        capture_output=True, text=True).stdout) for _ in range(runs)]
    return statistics.median(samples)


def warm_requests(count: int) -> tuple[float, float]:
    """p50 and p99 ms of the handler's answer to GET /iot/keys under moto, after a first (cold) one."""
    from moto import mock_aws

    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        os.environ.pop(name, None)
    import boto3

    from iotnotify.role import setup_role
    from iotnotify.server import handler

    event = {"version": "2.0", "routeKey": "GET /iot/keys", "rawPath": "/iot/keys",
             "requestContext": {"http": {"method": "GET", "path": "/iot/keys"}}, "queryStringParameters": None}
    with mock_aws(), contextlib.redirect_stdout(io.StringIO()):  # the handler logs each request (CloudWatch's)
        setup_role(boto3.client("iam"), boto3.client("sts"), region="us-east-1")
        if handler.handler(event)["statusCode"] != 200:
            raise RuntimeError("the handler did not answer 200")
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            handler.handler(event)
            samples.append(time.perf_counter() - start)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def local_load(clients: int, requests: int) -> tuple[float, float, float, int, int]:
    """The local endpoint under `clients` at once: requests/s, p50 ms, p99 ms, failures, peak threads."""
    work = Path(tempfile.mkdtemp())
    stack = LocalStack(StackConfig(work, free_port(), free_port(), free_port()))
    stack.start()
    port = int(stack.endpoint_url.split(":")[2].split("/")[0])
    samples: list[float] = []
    failures = [0]
    peak = [threading.active_count()]
    go = threading.Barrier(clients + 1)

    def client() -> None:
        go.wait()
        for _ in range(requests):
            start = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", "/iot/keys")
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if response.status != 200 or "sessionToken" not in json.loads(body):
                    failures[0] += 1
            except OSError:
                failures[0] += 1
            samples.append(time.perf_counter() - start)
            peak[0] = max(peak[0], threading.active_count())

    baseline = threading.active_count()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    go.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    stack.stop()
    cuts = statistics.quantiles(samples, n=100)
    return len(samples) / elapsed, cuts[49] * 1000, cuts[98] * 1000, failures[0], peak[0] - baseline - clients


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        deploy.write(Path(folder) / "sam")
        function = Path(folder) / "sam" / deploy.FUNCTION
        rows = package_rows(function)
        whole = Path(folder) / "whole"  # the package without its bytecode, as function/ is
        shutil.copytree(deploy.PACKAGE, whole / deploy.PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
        imports = [cold_import(whole, args.runs), cold_import(function, args.runs)]
    print(f"keys endpoint ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
          f"{sys.version.split()[0]}), medians of {args.runs} runs")
    print(f"{'the function':<34} {'files':>6} {'zipped':>10} {'cold import':>12}")
    for (what, files, size, _), seconds in zip(rows, imports, strict=True):
        print(f"{what:<34} {files:>6} {size / 1024:>7.0f} KB {seconds * 1000:>9.0f} ms")
    p50, p99 = warm_requests(200)
    print(f"warm request (handler, moto, 200): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    rate, p50, p99, failed, threads = local_load(args.clients, args.requests)
    print(f"local endpoint, {args.clients} clients x {args.requests} GETs: {rate:,.0f} requests/s, p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, {failed} failed, {threads} endpoint threads at the peak")
    print("cold import: a fresh interpreter importing the handler (boto3 included), no bytecode cache; the Lambda"
          " runtime is python3.12, this machine's Python is above.")


if __name__ == "__main__":
    main()
