"""`watch FILTER --silence DURATION [-- CMD]` (issue 31, item 3): a line (and CMD) once per silence,
a line when it ends; per topic with --per-topic, bounded."""

import json
import re
import threading
import time

from iotnotify import watch
from iotnotify.watch import Silences
from tests.helpers import Lines, wait_for
from tests.test_request_respond import finish


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def silences(silence: float, per_topic: bool = False) -> tuple[Silences, Clock, Clock]:
    """Silences on a monotonic clock and a wall clock of the test's, which move together unless told."""
    clock, wall = Clock(), Clock(1_800_000_000.0)
    return Silences(silence, per_topic, clock, wall), clock, wall


def advance(seconds: float, *clocks: Clock) -> None:
    for clock in clocks:
        clock.now += seconds


def kinds(events):
    return [(e.kind, e.topic, round(e.seconds), e.last) for e in events]


def test_a_silence_is_said_once_and_ended_by_the_next_message():
    watching, clock, wall = silences(60)
    assert watching.wait() == 60
    advance(59, clock, wall)
    assert watching.due() == [] and watching.wait() == 1
    advance(1, clock, wall)
    assert kinds(watching.due()) == [("silent", "", 60, None)]  # nothing since the watch began
    advance(100, clock, wall)
    assert watching.due() == []  # once per silence
    assert kinds(watching.heard("a/b")) == [("resumed", "", 160, None)]
    assert watching.heard("a/b") == []
    advance(60, clock, wall)
    assert kinds(watching.due()) == [("silent", "", 60, 1_800_000_160.0)]  # the last message's wall time


def test_a_wall_clock_set_forward_makes_no_silence():
    watching, _clock, wall = silences(60)
    advance(3600, wall)  # NTP steps the clock, a laptop resumes: the monotonic clock did not move
    assert watching.due() == []


def test_per_topic_each_topic_heard_has_its_own_silence():
    watching, clock, wall = silences(10, per_topic=True)
    watching.heard("hb/web1")
    watching.heard("hb/web2")
    for _ in range(3):
        advance(5, clock, wall)
        watching.heard("hb/web2")  # web2 keeps beating
    assert kinds(watching.due()) == [("silent", "hb/web1", 15, 1_800_000_000.0)]
    assert watching.due() == []
    assert kinds(watching.heard("hb/web1")) == [("resumed", "hb/web1", 15, 1_800_000_000.0)]
    advance(10, clock, wall)
    assert {e.topic for e in watching.due()} == {"hb/web1", "hb/web2"}  # (not the filters as a whole)


def test_per_topic_the_filters_as_a_whole_are_silent_only_while_nothing_came():
    watching, clock, wall = silences(10, per_topic=True)
    advance(10, clock, wall)
    assert kinds(watching.due()) == [("silent", "", 10, None)]
    assert kinds(watching.heard("hb/x")) == [("resumed", "", 10, None)]


def test_past_the_bound_a_new_topic_takes_the_place_of_the_one_silent_longest(monkeypatch):
    monkeypatch.setattr(watch, "MAX_TOPICS", 3)
    watching, clock, wall = silences(10, per_topic=True)
    for n in range(3):
        watching.heard(f"t/{n}")
    watching.heard("t/new")  # none silent: not watched, said once
    assert watching.full and "t/new" not in watching._heard
    advance(5, clock, wall)
    watching.heard("t/2")
    advance(6, clock, wall)
    assert {e.topic for e in watching.due()} == {"t/0", "t/1"}
    watching.heard("t/new")  # takes t/0's place
    assert list(watching._heard) == ["t/1", "t/2", "", "t/new"]  # the whole ("") and 3 topics, in the order heard


def test_watch_says_a_silence_and_exits_after_count(cli, tmp_path, topic):
    started = time.monotonic()
    code, out, err = finish(cli.ready(tmp_path, "watch", topic, "--silence", "2s", "-C", "1"))
    assert code == 0, err
    assert re.fullmatch(rf"\S+ silent {topic}: no message for [23] s \(none since the watch began\)\n", out), out
    assert 2 <= time.monotonic() - started < 20


def test_watch_per_topic_runs_the_command_for_the_topic_gone_quiet(cli, tmp_path, topic):
    ran = tmp_path / "ran"
    proc = cli.ready(tmp_path, "watch", f"{topic}/+", "--silence", "5s", "--per-topic", "--json", "-C", "1", "--",
                     "sh", "-c", f'echo "$IOTNOTIFY_EVENT $IOTNOTIFY_TOPIC $IOTNOTIFY_SILENCES $IOTNOTIFY_LAST_TIME" > {ran}')
    assert cli.run("send", f"{topic}/web1", "up").returncode == 0  # (within 5 s: else the whole is silent first)
    stop = threading.Event()

    def beat() -> None:  # web2 keeps beating
        while not stop.is_set():
            cli.run("send", f"{topic}/web2", "beat", "-q", "0")
            stop.wait(0.5)

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        code, out, err = finish(proc)
    finally:
        stop.set()
        beating.join()
    assert code == 0, err
    event = json.loads(out)
    assert (event["event"], event["topic"], event["seconds"] >= 5) == ("silent", f"{topic}/web1", True)
    assert ran.read_text().split() == ["silent", f"{topic}/web1", "1", event["last"]]


def test_watch_says_when_a_silence_ends_and_ctrl_c_ends_it(cli, tmp_path, topic):
    printed = Lines(cli.ready(tmp_path, "watch", topic, "--silence", "1s"))
    lines = printed.lines
    wait_for(lambda: any(" silent " in line for line in lines), 20, "the silence")
    assert cli.run("send", topic, "back").returncode == 0
    wait_for(lambda: any(" resumed " in line for line in lines), 20, "the end of the silence")
    assert printed.stop()[0] == 0
    assert re.fullmatch(rf"\S+ silent {topic}: no message for \d+ s \(none since the watch began\)\n", lines[0])
    assert re.fullmatch(rf"\S+ resumed {topic} after \d+ s\n", lines[1]), lines
