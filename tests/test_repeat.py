"""`send --repeat N --interval S`: a heartbeat over one connection, directly or through the agent;
0 repeats until interrupted, which ends as a stream of lines ends (exit 130, or 143 for SIGTERM)."""

import signal
import subprocess
import time

import pytest

from tests.helpers import IOTNOTIFY, run_in_process, wait_for


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, bytes, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err.decode()


def test_the_message_goes_n_times_one_interval_apart(cli, tmp_path):
    sub = cli.subscriber(tmp_path, "demo/beat", "-C", "3", "-W", "30", "--json")
    began = time.monotonic()
    sent = cli.run("send", "demo/beat", "alive", "--repeat", "3", "--interval", "0.5", "--no-agent")
    took = time.monotonic() - began
    assert sent.returncode == 0, sent.stderr
    code, out, err = finish(sub)
    assert code == 0, err
    assert [line.count('"payload": "alive"') for line in out.decode().splitlines()] == [1, 1, 1]
    assert took >= 1.0  # two intervals between three messages


def test_repeat_zero_beats_until_interrupted_and_says_what_was_acknowledged(cli, tmp_path):
    sub = cli.subscriber(tmp_path, "demo/beat0", "-C", "3", "-W", "30")
    sender = subprocess.Popen([*IOTNOTIFY, "send", "demo/beat0", "tick", "--repeat", "0", "--interval", "0.2",
                               "--no-agent"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=cli.env)
    code, out, err = finish(sub)
    assert (code, out) == (0, b"tick\ntick\ntick\n"), err
    sender.send_signal(signal.SIGTERM)
    _out, said = sender.communicate(timeout=20)
    assert sender.returncode == 143, said
    assert said.decode().startswith("iotnotify: interrupted: 0 of ") and said.count(b"\n") == 1, said


def test_a_heartbeat_goes_through_the_agent_too(cli, tmp_path):
    agent = cli.start("agent", "start")
    try:
        wait_for(lambda: cli.run("agent", "status").returncode == 0, 30, "the agent")
        sub = cli.subscriber(tmp_path, "demo/beat-agent", "-C", "2", "-W", "30")
        sent = cli.run("send", "demo/beat-agent", "via the agent", "--repeat", "2", "--interval", "0.1", "--debug")
        assert sent.returncode == 0, sent.stderr
        assert "connecting to" not in sent.stderr  # the agent's connection, not one of its own
        code, out, err = finish(sub)
        assert (code, out) == (0, b"via the agent\nvia the agent\n"), err
    finally:
        cli.run("agent", "stop")
        agent.communicate(timeout=30)


@pytest.mark.parametrize("args, said", [
    (["--repeat", "-1"], "Invalid value for '--repeat'"),
    (["--repeat", "2", "--interval", "0"], "Invalid value for '--interval'"),
    (["--repeat", "2", "--interval", "nan"], "Invalid value for '--interval'"),
    (["--interval", "5"], "--interval goes with --repeat N"),
])
def test_bad_repeats_are_one_line_and_exit_2(cli, args, said):
    result = run_in_process(["send", "demo/x", "hi", *args], cli.env)
    assert result.returncode == 2 and said in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_repeat_takes_one_message_not_a_stream(cli):
    result = run_in_process(["send", "demo/x", "-l", "--repeat", "2"], cli.env, input=b"a\nb\n")
    assert result.returncode == 2 and "--repeat sends one message again and again" in result.stderr
