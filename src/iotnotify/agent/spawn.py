"""Starting an agent in the background (`agent start --detach`, `send --persist`): a process of its
own session, its settings handed over on a pipe, its stderr in a 0600 log beside its socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from iotnotify import errors
from iotnotify.agent.client import Unavailable, status
from iotnotify.settings import Settings

START_TIMEOUT = 60.0  # s for a new agent to connect (keys fetch + connection, each with its own timeout)


def start_detached(settings: Settings, idle: float | None, path: str, debug: bool = False) -> int:
    """Start an agent for `settings` listening at `path`; its pid once it serves, or the error it
    exited with (as the same error class, so the exit code is the one the agent had)."""
    log = path.removesuffix(".sock") + ".log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    args = [sys.executable, "-m", "iotnotify", "agent", "start", "--settings-from-stdin"]
    if idle is not None:
        args += ["--idle", f"{idle:g}"]
    if debug:
        args.append("--debug")
    from iotnotify.crt import warmup

    warmup.wait()  # the environment the agent gets is ours, without what a warm-up sets for itself
    try:
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=fd, stderr=fd,  # noqa: S603 - this iotnotify
                                   start_new_session=True)
    finally:
        os.close(fd)
    if process.stdin is not None:
        with process.stdin:
            process.stdin.write(json.dumps(settings.to_json()).encode())
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise _failure(code, log)
        try:
            return int(status(path)["pid"])
        except Unavailable:
            time.sleep(0.02)
    process.kill()
    raise errors.ConnectError(f"the agent did not start within {START_TIMEOUT:g} s (its log: {log})")


def _failure(code: int, log: str) -> errors.IotNotifyError:
    """The error an agent that could not start exited with, from its exit code and last line."""
    lines = [line for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    said = lines[-1].removeprefix("iotnotify: ").removeprefix("error: ") if lines else f"exit {code}"
    kinds = [kind for kind in vars(errors).values()
             if isinstance(kind, type) and issubclass(kind, errors.IotNotifyError) and kind.exit_code == code]
    kind = kinds[0] if kinds else errors.ConnectError
    return kind(f"the agent could not start: {said}")
