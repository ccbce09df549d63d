"""Running a command for one message, bounded whatever it does.

For `respond`: its output kept up to a limit (a command that prints without end cannot fill the
memory of a responder that runs for days), the end of its stderr kept, its time limited, and the
processes it starts stopped with it (a child left holding the pipes would otherwise keep the
request open forever). For `on` (run_passing): its output and stderr are the caller's, its time
limited, and the payload fed to it only while it runs."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

ERR_KEPT = 64 * 1024  # bytes of the end of stderr kept (its last line goes in the reply)
CHUNK = 64 * 1024
AFTER_END = 1.0  # s to wait for the pipes to close once the command ended (or was stopped)


@dataclass(frozen=True)
class Outcome:
    """How the command went: its exit code (None: stopped at its time limit), its output up to the
    limit, the size of all it printed, and the end of its stderr."""

    code: int | None
    output: bytes
    output_size: int
    stderr: bytes


def run(command: list[str], data: bytes, env: dict[str, str], timeout: float, output_limit: int) -> Outcome:
    """Run `command` with `data` on stdin; OSError if it cannot be started."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                               stderr=subprocess.PIPE, env=env, start_new_session=True)
    output, stderr = bytearray(), bytearray()
    size = [0]

    def keep_output(chunk: bytes) -> None:
        size[0] += len(chunk)
        if len(output) <= output_limit:
            output.extend(chunk[: output_limit + 1 - len(output)])

    def keep_stderr(chunk: bytes) -> None:
        stderr.extend(chunk)
        del stderr[:-ERR_KEPT]

    threads = [threading.Thread(target=_write, args=(process.stdin, data), daemon=True),
               threading.Thread(target=_read, args=(process.stdout, keep_output), daemon=True),
               threading.Thread(target=_read, args=(process.stderr, keep_stderr), daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    try:
        code: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    except BaseException:  # Ctrl-C while waiting: the command goes too
        _stop(process)
        raise
    for thread in threads[1:]:  # its output, unless a process it started holds the pipes past the time
        thread.join(max(deadline - time.monotonic(), 0))
    if code is None or any(thread.is_alive() for thread in threads):
        _stop(process)
        for thread in threads[1:]:
            thread.join(AFTER_END)
    return Outcome(code, bytes(output), size[0], bytes(stderr))


def run_passing(command: list[str], data: bytes, env: dict[str, str | bytes], timeout: float) -> int | None:
    """Run `command` with `data` on stdin and the caller's stdout and stderr; its exit code, or None
    if it was stopped (with the processes of its session) after `timeout` seconds. OSError or
    ValueError if it cannot be started. No thread: the payload is fed in this one while the
    command runs (one that does not read it, or leaves it to a process it started, is not waited
    for)."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + timeout
    try:
        _feed(process, data, deadline)
        return process.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        _stop(process)
        return None
    except BaseException:  # Ctrl-C while waiting: the command goes too
        _stop(process)
        raise


def _feed(process: subprocess.Popen[bytes], data: bytes, deadline: float) -> None:
    """Write `data` to the command's stdin while it runs, until `deadline`; then close it. Poll,
    not select: a descriptor past 1023 is fine."""
    stdin = process.stdin
    if stdin is None:  # (not with stdin=PIPE)
        return
    pipe = stdin.fileno()
    os.set_blocking(pipe, False)
    writable = select.poll()
    writable.register(pipe, select.POLLOUT)
    view = memoryview(data)
    try:
        while view and process.poll() is None and time.monotonic() < deadline:
            if not writable.poll(100):
                continue
            try:
                view = view[os.write(pipe, view[:CHUNK]):]
            except BlockingIOError:  # room for less than was asked: poll again
                continue
    except OSError:
        pass  # the command closed its stdin (a broken pipe): it need not read it all
    finally:
        try:
            stdin.close()
        except OSError:
            pass


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the command and every process of its session, and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        pass  # ended already, and its group with it
    process.wait()


def _write(pipe: IO[bytes], data: bytes) -> None:
    try:
        with pipe:
            pipe.write(data)
    except OSError:
        pass  # the command does not read its stdin (a broken pipe): it need not


def _read(pipe: IO[bytes], keep: Callable[[bytes], None]) -> None:
    try:
        with pipe:
            while chunk := os.read(pipe.fileno(), CHUNK):
                keep(chunk)
    except (OSError, ValueError):
        pass  # closed under it: the command was stopped
