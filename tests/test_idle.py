"""Idle long-running commands sleep (issue 32, "idle cost"): connected, with nothing arriving,
`subscribe`'s main thread is not woken at all, and `tail`'s live view looks once a second and
draws nothing new. Counted from the kernel's context switches (/proc/PID/task/PID/status) over
a few seconds: what bench/idle.py measures over minutes."""

import fcntl
import os
import pty
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.helpers import IOTNOTIFY, wait_for
from tests.test_request_respond import finish

QUIET = 4.0  # s watched


def main_thread_wakeups(pid: int) -> int:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines())
    return int(status["voluntary_ctxt_switches"]) + int(status["nonvoluntary_ctxt_switches"])


def woken_in(pid: int, seconds: float) -> int:
    before = main_thread_wakeups(pid)
    time.sleep(seconds)
    return main_thread_wakeups(pid) - before


def test_an_idle_subscriber_sleeps(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, topic)
    time.sleep(0.5)  # (what follows the SUBACK: the ready file, the first blocking read)
    woken = woken_in(subscriber.pid, QUIET)
    subscriber.send_signal(2)
    code, _out, err = finish(subscriber)
    assert woken <= 1, f"main thread woken {woken} times in {QUIET:g} s"  # (it was twice a second)
    assert code == 130, err  # Ctrl-C still ends it at once, blocked as it is


def test_an_idle_subscriber_reading_message_by_message_sleeps_and_sigterm_ends_it(cli, tmp_path, topic):
    subscriber = cli.subscriber(tmp_path, topic, "--grep", "x")  # (not the fast path: Inbox.messages)
    time.sleep(0.5)
    woken = woken_in(subscriber.pid, QUIET)
    subscriber.send_signal(15)
    code, _out, err = finish(subscriber)
    assert woken <= 1, f"main thread woken {woken} times in {QUIET:g} s"
    assert code == 143, err


def test_an_idle_live_tail_looks_once_a_second(cli, topic):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([*IOTNOTIFY, "tail", topic], stdin=slave, stdout=slave, stderr=slave,
                            env={**cli.env, "TERM": "xterm-256color"}, start_new_session=True)
    os.close(slave)
    seen = bytearray()

    def connected() -> bool:
        try:
            seen.extend(os.read(master, 65536))
        except BlockingIOError:
            pass
        return b"connected" in seen

    try:
        os.set_blocking(master, False)
        wait_for(connected, 30, "tail connected")
        time.sleep(2)  # the footer's rate settles (it shows the last 10 s)
        woken = woken_in(proc.pid, QUIET)
        assert woken <= QUIET * 2 + 2, f"main thread woken {woken} times in {QUIET:g} s"  # (it was 10 a second)
    finally:
        proc.send_signal(2)
        proc.wait(20)
        os.close(master)


def test_an_idle_agent_and_watch_sleep_until_something_is_due(user, tmp_path, topic):
    agent = user.start("agent", "start")
    watching = user.ready(tmp_path, "watch", topic, "--silence", "1h")
    try:
        wait_for(lambda: user.run("agent", "status").returncode == 0, 30, "the agent serving")
        time.sleep(0.5)
        woken = {name: woken_in(proc.pid, QUIET) for name, proc in (("agent", agent), ("watch", watching))}
    finally:
        for proc in (agent, watching):
            proc.send_signal(2)
            finish(proc)
    assert woken["agent"] <= 1 and woken["watch"] <= 1, woken  # (the agent looked once a second)
