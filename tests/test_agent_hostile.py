"""The agent's socket takes only this user's processes, but what one of them sends is not trusted
(issue 26, item 10): a frame's claimed size does not make it buffer, a caller that stalls in a
frame is let go, a header of the wrong kind is answered, and `agent stop` ends a stalled caller."""

from __future__ import annotations

import glob
import socket
import time
from pathlib import Path

import pytest

from iotnotify.agent import identity
from iotnotify.agent.wire import (
    HEADER,
    MAX_VALUE,
    MESSAGE,
    READY,
    VERDICT,
    VERSION,
    FrameError,
    Reader,
    frame,
    value,
    value_frame,
)
from iotnotify.settings import from_environment
from tests.helpers import Cli, wait_for
from tests.test_agent import folder, start_agent


class Feed:
    """A socket that hands out `total` bytes of one frame claiming `claimed` bytes, then ends; it
    remembers the timeouts it was given."""

    def __init__(self, kind: bytes, claimed: int, total: int) -> None:
        self.head = kind + claimed.to_bytes(4, "big")
        self.left = total
        self.timeouts: list[float | None] = []

    def recv(self, size: int) -> bytes:
        if self.head:
            chunk, self.head = self.head, b""
            return chunk
        size = min(size, self.left)
        self.left -= size
        return b"x" * size

    def settimeout(self, value: float | None) -> None:
        self.timeouts.append(value)


def test_a_message_claiming_4_gib_keeps_only_the_brokers_limit_in_memory():
    feed = Feed(MESSAGE, 2**32 - 1, 20 << 20)  # 20 MiB come, of the 4 GiB claimed
    reader = Reader(feed, max_message=128 * 1024, frame_timeout=10)
    assert reader.next() is None  # the caller went away before the end of its frame
    assert len(reader.buffer) <= 1 << 16 and feed.left == 0


def test_a_message_over_the_limit_is_cut_and_says_its_size():
    body = b"m" * 300_000
    feed = Feed(MESSAGE, len(body), len(body))
    reader = Reader(feed, max_message=128 * 1024, frame_timeout=10)
    kind, kept = reader.next()
    assert (kind, len(kept), reader.cut) == (MESSAGE, 128 * 1024 + 1, 300_000)


def test_a_structured_frame_over_its_limit_ends_the_stream_before_it_is_read():
    feed = Feed(HEADER, MAX_VALUE + 1, 10)
    with pytest.raises(FrameError):
        Reader(feed, max_message=128 * 1024, frame_timeout=10).next()
    assert feed.left == 10  # nothing of it was read


def test_reads_within_a_frame_have_a_time_limit_and_between_frames_none():
    feed = Feed(MESSAGE, 5, 5)
    reader = Reader(feed, max_message=100, frame_timeout=7)
    reader.next()
    assert feed.timeouts == [None, 7]  # waiting for a frame: no limit; for the rest of one: 7 s


def agent_socket(user: Cli) -> socket.socket:
    [path] = glob.glob(str(folder(user) / "agent-*.sock"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(path)
    return sock


def agent_log(user: Cli) -> str:
    return "".join(Path(p).read_text() for p in glob.glob(str(folder(user) / "agent-*.log")))


@pytest.mark.parametrize("header, said", [
    ({"qos": 7}, "the send's QoS 7 is not 0 or 1"),
    ({"properties": ["a", "b"]}, "the send's properties are not a table"),
    ({"timeout": float("nan")}, "the send's timeout nan is not 0 to"),
    ({"topic": 5}, "the send's topic is not a string"),
    ({"properties": {"user_properties": "x"}}, "field 'user_properties' is not valid"),
])
def test_a_header_of_the_wrong_kind_is_answered_not_a_traceback(user, topic, header, said):
    start_agent(user)
    settings = from_environment("local", {**user.env, "IOTNOTIFY_CONFIG": f"{user.env['XDG_CONFIG_HOME']}/iotnotify/config.toml"})
    with agent_socket(user) as sock:
        sock.sendall(value_frame(HEADER, {"v": VERSION, "identity": identity(settings, user.env), "topic": topic,
                                          "whole": True, **header}))
        kind, body = Reader(sock).next()
    assert kind == VERDICT
    verdict = value(body)
    assert verdict["error"] == "UsageError" and said in verdict["message"]
    assert "Traceback" not in agent_log(user)
    assert user.run("send", topic, "still serving").returncode == 0


def stream_header(user: Cli, topic: str) -> bytes:
    """The HEADER of a `send -l` through the agent (a stream: its messages may come slowly)."""
    settings = from_environment("local", {**user.env, "IOTNOTIFY_CONFIG": f"{user.env['XDG_CONFIG_HOME']}/iotnotify/config.toml"})
    return value_frame(HEADER, {"v": VERSION, "identity": identity(settings, user.env), "topic": topic, "qos": 1,
                                "whole": False})


def test_agent_stop_ends_a_stream_whose_caller_stalls_after_its_header(user, topic):
    """The issue's case: a complete header, then nothing (before, the agent waited for the caller for
    ever, and `agent stop` for the agent)."""
    pid = start_agent(user)
    stalled = agent_socket(user)
    stalled.sendall(stream_header(user, topic))
    assert Reader(stalled).next()[0] == READY
    started = time.monotonic()
    done = user.run("agent", "stop")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15  # CLOSE_GRACE, then its read side is shut
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "the agent to exit")
    stalled.close()


def test_a_caller_that_stops_in_the_middle_of_a_message_is_let_go(user, topic):
    start_agent(user)
    caller = agent_socket(user)
    caller.sendall(stream_header(user, topic))
    assert Reader(caller).next()[0] == READY
    caller.sendall(frame(MESSAGE, b"hello")[:7])  # the start of a message, and then nothing
    started = time.monotonic()
    while caller.recv(4096):  # the agent's verdict, then the end: it let go after its frame time (10 s)
        pass
    assert 8 < time.monotonic() - started < 18
    caller.close()
    assert user.run("agent", "status").returncode == 0


def test_a_value_claiming_more_than_it_holds_is_refused_before_marshal_reads_it():
    import marshal

    assert value(marshal.dumps({"v": 2, "topic": "t/é", "n": None, "l": [1, 2**80, b"x"]}, 4))["l"][1] == 2**80
    for claim in (b"(" + (2**31 - 1).to_bytes(4, "little"), b"{z\x01a[" + (10**9).to_bytes(4, "little"),
                  marshal.dumps(compile("1", "x", "eval"))):
        with pytest.raises(ValueError, match="not a frame's value"):
            value(claim)  # 5 bytes that would make marshal.loads allocate 16 GiB
