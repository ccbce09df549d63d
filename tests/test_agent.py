"""The send agent (`agent start|stop|status`, `send` through it, `send --persist`): against the local
stack with AWS's rules on; every agent a test starts is stopped at its end."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from iotnotify.agent.client import peer_pid_alive
from tests.helpers import IOTNOTIFY, Cli, Stack, imports_of, user_of, wait_for


def start_agent(user: Cli, *args: str) -> int:
    done = user.run("agent", "start", "--detach", *args)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split("pid ")[1].split(")")[0])


def status(user: Cli) -> dict[str, str]:
    done = user.run("agent", "status")
    assert done.returncode == 0, done.stderr
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def folder(user: Cli) -> Path:
    return Path(user.env["XDG_RUNTIME_DIR"]) / "iotnotify"


def test_send_goes_through_a_running_agent_and_is_delivered(user: Cli, topic: str, tmp_path: Path) -> None:
    start_agent(user)
    subscriber = user.subscriber(tmp_path, topic, "-C", "3")
    for text in ("one", "two", "three"):
        done = user.run("send", topic, text)
        assert done.returncode == 0, done.stderr
    out, _ = subscriber.communicate(timeout=20)
    assert out.decode().split() == ["one", "two", "three"]
    assert status(user)["sends"] == "3"
    assert status(user)["delivered"] == "3"


def test_agent_socket_is_private_and_status_shows_no_secret(user: Cli) -> None:
    start_agent(user)
    (sock,) = folder(user).glob("agent-*.sock")
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder(user).stat().st_mode) == 0o700
    keys = user.run("keys", "--json").stdout
    import json

    secrets = json.loads(keys)
    shown = user.run("agent", "status", "--json").stdout
    assert secrets["secretKey"] not in shown and secrets["sessionToken"] not in shown
    assert json.loads(shown)["broker"].startswith("127.0.0.1:")
    for log in folder(user).glob("agent-*.log"):
        assert secrets["secretKey"] not in log.read_text()
        assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_plain_send_through_the_agent_loads_neither_click_nor_awscrt(user: Cli, topic: str) -> None:
    start_agent(user)
    imported = imports_of(user.env, "send", topic, "hi")
    assert "iotnotify.agent.client" in imported
    assert not {"click", "awscrt", "dataclasses", "pathlib", "json", "socket", "threading", "typing", "enum",
                "signal"} & imported
    assert status(user)["sends"] == "1"


def test_send_with_no_agent_flag_connects_by_itself(user: Cli, topic: str) -> None:
    start_agent(user)
    assert user.run("send", "--no-agent", topic, "x").returncode == 0
    assert user.run("send", topic, "x", env={"IOTNOTIFY_NO_AGENT": "1"}).returncode == 0
    assert status(user)["sends"] == "0"


def test_send_with_other_settings_does_not_use_the_agent(user: Cli, topic: str) -> None:
    start_agent(user)
    assert user.run("send", "--protocol", "3.1.1", topic, "x").returncode == 0
    assert user.run("send", topic, "x", "--will-topic", topic).returncode == 0  # a will needs its own connection
    assert status(user)["sends"] == "0"
    assert user.run("send", "--protocol", "5", "-q", "0", topic, "x").returncode == 0  # the same settings
    assert status(user)["sends"] == "1"


@pytest.mark.parametrize("args, code, said", [
    (["test/a/#", "x"], 2, "wildcard"),
    (["elsewhere/x", "x"], 10, "may not publish to 'elsewhere/x'"),
    (["-f", "-", "test/big"], 2, "payload"),
])
def test_agent_refusals_say_and_exit_as_without_it(user: Cli, args: list[str], code: int, said: str) -> None:
    big = b"x" * (128 * 1024 + 1)
    direct = user.run("send", "--no-agent", *args, input=big)
    start_agent(user)
    through = user.run("send", *args, input=big)
    assert (through.returncode, through.stderr) == (direct.returncode, direct.stderr)
    assert through.returncode == code and said in through.stderr
    assert status(user)["sends"] == "1"


def test_lines_over_the_limit_are_skipped_and_saved_with_failed(user: Cli, topic: str, tmp_path: Path) -> None:
    start_agent(user)
    failed = tmp_path / "failed"
    lines = b"ok1\n" + b"y" * (128 * 1024 + 1) + b"\nok2\n"
    done = user.run("send", "-l", topic, "--failed", str(failed), input=lines)
    assert done.returncode == 6
    assert "message 2 not sent" in done.stderr
    assert "1 of 3 messages was not delivered" in done.stderr and f"saved to {failed}" in done.stderr
    assert failed.read_bytes() == b"y" * (128 * 1024 + 1) + b"\n"


@pytest.mark.parametrize("agent", [True, False], ids=["agent", "no-agent"])
def test_a_failed_file_that_cannot_be_written_is_said_not_a_traceback(user: Cli, topic: str, agent: bool) -> None:
    """--failed somewhere nothing can be made (under /proc): what was not delivered cannot be saved,
    and the error says so, with the send's own exit code."""
    if agent:
        start_agent(user)
    lines = b"ok1\n" + b"y" * (128 * 1024 + 1) + b"\n"
    done = user.run("send", "-l", topic, "--failed", "/proc/none/failed", *([] if agent else ["--no-agent"]), input=lines)
    assert done.returncode == 6, done.stderr
    assert "1 of 2 messages was not delivered" in done.stderr and "NOT saved to /proc/none/failed: " in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    empty = user.run("send", "--failed", "", topic, "x")
    assert (empty.returncode, empty.stderr) == (2, "iotnotify: error: --failed needs a file name\n")


def test_agent_killed_mid_send_loses_nothing_the_sender_was_told(user: Cli, topic: str, tmp_path: Path) -> None:
    pid = start_agent(user)
    subscriber = user.subscriber(tmp_path, topic, "-v")
    failed = tmp_path / "failed"
    sender = subprocess.Popen([*IOTNOTIFY, "send", "-l", topic, "--failed", str(failed)], stdin=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=user.env)
    assert sender.stdin is not None
    for number in range(1, 6):
        sender.stdin.write(f"m{number}\n".encode())
        sender.stdin.flush()
    wait_for(lambda: status(user)["delivered"] == "5", 20, "five messages delivered through the agent")
    os.kill(pid, signal.SIGKILL)
    for number in range(6, 9):
        sender.stdin.write(f"m{number}\n".encode())
    sender.stdin.close()
    sender.wait(timeout=30)
    assert sender.stderr is not None
    with sender.stderr:
        err = sender.stderr.read()
    assert sender.returncode == 6, err
    assert b"the agent ended before the broker acknowledged" in err
    subscriber.terminate()
    received = {line.split()[-1] for line in subscriber.communicate()[0].decode().splitlines()}
    saved = set(failed.read_text().split()) if failed.exists() else set()
    unread = re.search(rb"input not read past message (\d+)", err)  # as send leaves input after a stop
    read = int(unread.group(1)) if unread else 8
    assert read >= 5
    assert received | saved == {f"m{n}" for n in range(1, read + 1)}  # every line read: delivered or saved


def test_stale_socket_is_removed_and_send_connects_by_itself(user: Cli, topic: str) -> None:
    pid = start_agent(user)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not peer_pid_alive(pid), 10, "agent gone")
    (sock,) = folder(user).glob("agent-*.sock")
    done = user.run("send", topic, "after")
    assert done.returncode == 0, done.stderr
    assert not sock.exists()
    gone = user.run("agent", "status")
    assert gone.returncode == 5 and "no agent is running for these settings" in gone.stderr


@pytest.mark.parametrize("form", [["m1"], ["-s"], ["-l"], ["-f", "-"]], ids=["argument", "stdin", "lines", "file-stdin"])
def test_an_agent_gone_before_it_took_the_send_leaves_it_to_the_next_way(user: Cli, topic: str, tmp_path: Path,
                                                                        form: list[str]) -> None:
    """The route file names an agent that died: the quick path reads the message, finds the agent
    gone, and the route's next way (HTTPS for one message, MQTT for lines) sends what was read,
    stdin's too, from the same process; Ctrl-C there would save it with --failed, as any send."""
    pid = start_agent(user)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not peer_pid_alive(pid), 10, "agent gone")
    sub = user.subscriber(tmp_path, topic, "-C", "2" if form == ["-l"] else "1", "-W", "20")
    failed = tmp_path / "failed"
    done = user.run("send", "--failed", str(failed), topic, *form, input=b"m1\nm2\n" if form == ["-l"] else b"m1")
    assert (done.returncode, done.stderr) == (0, "")
    out, _err = sub.communicate(timeout=30)
    assert out.split() == ([b"m1", b"m2"] if form == ["-l"] else [b"m1"])
    assert not failed.exists()


def test_a_socket_folder_others_may_enter_is_not_used(user: Cli, topic: str) -> None:
    folder(user).mkdir(mode=0o700)
    folder(user).chmod(0o777)
    done = user.run("send", topic, "x")
    assert done.returncode == 0
    assert "not a private folder" in done.stderr
    refused = user.run("agent", "start")
    assert refused.returncode == 3 and "not a private folder" in refused.stderr


def test_persist_starts_an_agent_that_exits_when_idle(user: Cli, topic: str) -> None:
    assert user.run("agent", "status").returncode == 5
    done = user.run("send", "--persist", "3s", topic, "first")
    assert done.returncode == 0, done.stderr
    assert status(user)["sends"] == "1"
    assert user.run("send", topic, "second").returncode == 0
    assert status(user)["sends"] == "2"
    # polled by `agent status` all the while: a status is not a use, the agent still exits 3 s after the last send
    wait_for(lambda: user.run("agent", "status").returncode == 5, 12, "the agent to exit when idle")
    assert not list(folder(user).glob("agent-*.sock"))


def test_persist_from_the_profile_and_a_bad_duration(user: Cli, topic: str) -> None:
    bad = user.run("send", "--persist", "soon", topic, "x")
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr
    done = user.run("send", topic, "x", env={"IOTNOTIFY_PERSIST": "1m"})
    assert done.returncode == 0, done.stderr
    assert status(user)["idle_exit"] == "60.0"


def test_agent_stop_waits_for_the_agent_and_says_when_none_runs(user: Cli) -> None:
    pid = start_agent(user)
    done = user.run("agent", "stop")
    assert done.returncode == 0 and f"agent stopped (pid {pid})" in done.stdout
    assert not peer_pid_alive(pid)
    again = user.run("agent", "stop")
    assert again.returncode == 5 and "no agent is running" in again.stderr


def test_second_agent_for_the_same_settings_is_refused(user: Cli) -> None:
    start_agent(user)
    done = user.run("agent", "start")
    assert done.returncode == 2 and "already running" in done.stderr


def test_foreground_agent_stops_on_ctrl_c(user: Cli, topic: str) -> None:
    agent = user.start("agent", "start")
    wait_for(lambda: user.run("agent", "status").returncode == 0, 30, "the agent to serve")
    assert user.run("send", topic, "x").returncode == 0
    agent.send_signal(signal.SIGINT)
    _, err = agent.communicate(timeout=20)
    assert agent.returncode == 0 and b"agent stopped" in err
    assert not list(folder(user).glob("agent-*.sock"))


def test_agent_that_cannot_connect_says_why(stack: Stack, tmp_path: Path) -> None:
    cli = user_of(stack)
    done = cli.run("--keys-timeout", "2", "agent", "start", "--detach", "--endpoint", "http://127.0.0.1:9/iot/keys")
    assert done.returncode == 4 and "the agent could not start" in done.stderr
    assert "keys endpoint" in done.stderr


def test_agent_started_while_sends_stream_serves_them_all(user: Cli, topic: str, tmp_path: Path) -> None:
    start_agent(user)
    subscriber = user.subscriber(tmp_path, topic, "-C", "300")
    senders = [subprocess.Popen([*IOTNOTIFY, "send", "-l", topic], stdin=subprocess.PIPE, env=user.env)
               for _ in range(3)]
    for number, sender in enumerate(senders):
        sender.communicate(b"".join(f"{number}-{i}\n".encode() for i in range(100)), timeout=60)
        assert sender.returncode == 0
    out, _ = subscriber.communicate(timeout=30)
    assert len(out.split()) == 300


def test_duration_parsing() -> None:
    from iotnotify.times import parse_duration

    assert [parse_duration(text) for text in ("90", "90s", "10m", "1h", "1d", "0.5s")] == [
        90, 90, 600, 3600, 86400, 0.5]
    for bad in ("", "0", "-1m", "5x", "inf", "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_quick_parse_takes_only_plain_sends() -> None:
    from iotnotify.quick.argv import parse

    def options(argv: list[str]) -> dict[str, object]:
        parsed = parse(argv)
        assert parsed is not None
        return parsed[1]

    assert options(["send", "t", "m"]) == {"topic": "t", "message": "m", "qos": 1, "timeout": 30.0}
    assert options(["-p", "local", "send", "-q", "0", "-r", "--timeout=5", "t", "-m", "x"]) == {
        "profile": "local", "topic": "t", "message": "x", "qos": 0, "retain": True, "timeout": 5.0}
    assert options(["send", "-l", "t"])["lines"] is True
    assert options(["send", "t", "-"])["stdin"] is True
    outgoing = parse(["send", "-q", "0", "-r", "--timeout=5", "--failed", "f", "t", "m"])[0]  # type: ignore[index]
    assert (outgoing.topic, outgoing.qos, outgoing.retain, outgoing.timeout, outgoing.failed, outgoing.single) == (
        "t", 0, True, 5.0, "f", True)
    assert parse(["send", "-l", "t"])[0].single is False  # type: ignore[index]
    for other in (["send", "t"], ["send", "t", "a", "b"], ["send", "-q", "2", "t", "m"], ["send", "--debug", "t", "m"],
                  ["--endpoint", "x", "send", "t", "m"], ["send", "t", "m", "-m", "n"], ["send", "-l", "-s", "t"],
                  ["send", "--help"], ["send", "t", "m", "--client-id", "c"], ["send", "-rq0", "t", "m"]):
        assert parse(other) is None, other


def test_agent_connects_again_with_new_keys_before_its_keys_expire(stack: Stack) -> None:
    """At a tick, keys within their refresh margin (a quarter of their life, at most 5 minutes)
    make the agent open a new connection with new keys; the old one closes once no send uses it."""
    import dataclasses
    import datetime as dt

    from iotnotify.agent.server import Agent
    from iotnotify.keys import KeyCache, endpoint_source
    from iotnotify.mqtt import ConnectOptions

    folder_ = Path(tempfile.mkdtemp(prefix="rt-"))
    source = endpoint_source(stack.endpoint, 5, KeyCache(folder_ / "cache"))
    agent = Agent(source, ConnectOptions(ca_file=stack.ca_file), "identity", str(folder_ / "agent.sock"))
    agent.start()
    try:
        first = agent.connection
        assert first is not None
        now = dt.datetime.now(dt.UTC)  # as keys fetched an hour ago, 30 s from their end, would be
        first.keys = dataclasses.replace(first.keys, fetched_at=now - dt.timedelta(hours=1),
                                         expiration=now + dt.timedelta(seconds=30))
        agent._tick()
        second = agent.connection
        assert second is not first and second is not None
        assert second.keys.access_key != first.keys.access_key
        assert second.keys.fresh()
        wait_for(lambda: first.closing, 10, "the old connection to close")
        done = threading.Event()
        second.publish("test/agent-refresh", b"x", 1, False, lambda code: done.set())
        assert done.wait(10)
    finally:
        agent.close()
