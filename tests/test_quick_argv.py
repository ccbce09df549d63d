"""The quick path's reading of `send` (quick/argv.py) against click's, on argv hypothesis makes:
whatever the quick path takes, click takes too, with the same meaning (the same topic, message and
its source, QoS, retain flag, timeout, --failed file, --via and profile). The quick path may leave
anything to the CLI; it may never read a send another way than the CLI would."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iotnotify import errors
from iotnotify.cli import main
from iotnotify.cli.client import send_command, send_payloads
from iotnotify.quick.argv import MAX_SECONDS, NAMES, parse
from iotnotify.times import MAX_SECONDS as TIMES_MAX_SECONDS

FILE = str(Path(__file__))  # a file click can open

SEND_VALUES = {"qos": ["0", "1", "2", "01", " 1", "x", ""], "via": ["auto", "mqtt", "https", "bogus", ""],
               "timeout": ["0", "5", "nan", "inf", "-1", "1e400", "31536000", "31536001", "1_0", ""],
               "message": ["msg", "", "-", "-x", "--"], "file": [FILE, "-", "none"], "failed": ["out.txt", "", str(Path(__file__).parent), "/proc/version"],
               "profile": ["local", "", "send"]}
POSITIONAL = ["t", "msg", "", "-", "x y", "-x", "send", "--", "-r"]
WORDS = ["send", "--", "-", "--debug", "--no-agent", "--endpoint", "--records", "-h", "-rq", "-q0", "--retain=1"]


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """An argv near the plain forms: perhaps options before the command, `send`, then options (a
    flag; an option with a value of its kind, as one word or two; any word) and positional words,
    in any order."""
    def piece(names: list[str]) -> list[str]:
        name = draw(st.sampled_from(names))
        flag = draw(st.sampled_from(NAMES[name]))
        if name not in SEND_VALUES:
            return [flag]
        value = draw(st.sampled_from(SEND_VALUES[name]))
        return [flag, value] if draw(st.booleans()) else [f"{flag}={value}"]

    before = [draw(st.sampled_from(WORDS))] if draw(st.integers(0, 9)) == 0 else []
    before += [word for _ in range(draw(st.integers(0, 2))) for word in piece(["profile"])]
    pieces = [piece(list(NAMES)) for _ in range(draw(st.integers(0, 4)))]  # --profile after send too
    pieces += [[word] for word in draw(st.lists(st.sampled_from(POSITIONAL + WORDS), max_size=1))]
    pieces += [[word] for word in draw(st.lists(st.sampled_from(POSITIONAL), min_size=1, max_size=2))]
    return [*before, "send", *(word for part in draw(st.permutations(pieces)) for word in part)]


def click_reading(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | None:
    """What the CLI makes of `argv` as a send (its options, and the payloads from its arguments,
    a file standing for -f's, stdin empty), or None if it refuses it: click parses it all, then
    send's own checks."""
    seen: dict[str, Any] = {}

    def capture(**params: Any) -> None:
        file = params["file"]
        seen.update(params, profile=click.get_current_context().find_root().params.get("profile"),
                    file=None if file is None else "-" if file.name != FILE else FILE)
        try:
            seen["payloads"] = send_payloads(params["topic"], params["message"], params["message_opt"],
                                             None if file is None else io.BytesIO(b"file"), params["stdin"],
                                             params["lines"], params["records"], io.BytesIO())
        except errors.UsageError:
            seen["refused"] = True

    monkeypatch.setattr(send_command, "callback", capture)
    if main(argv) != 0 or not seen or seen.get("refused"):
        return None
    return seen


@pytest.fixture
def no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IOTNOTIFY_"):
            monkeypatch.delenv(name)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=argvs())
@example(argv=["send", "-q=1", "t", "m"])  # click reads a short option's "=" as its value's
@example(argv=["-p=x", "send", "t", "m"])
@example(argv=["send", "--timeout", "31536001", "t", "m"])  # over a year: click's Seconds refuses it
@example(argv=["--profile=", "send", "t", "m"])
def test_what_the_quick_path_reads_click_reads_the_same(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                        no_variables: None, capsys: pytest.CaptureFixture[str]) -> None:
    quick = parse(argv)
    if quick is None:
        return
    outgoing, options = quick
    if options.get("file", "-") not in ("-", FILE):
        return  # a file click cannot open: the quick path finds it cannot read it either, and leaves it to the CLI
    cli = click_reading(argv, monkeypatch)
    capsys.readouterr()
    assert cli is not None, f"the quick path takes {argv}, click refuses it"
    message = cli["message"] if cli["message"] is not None else cli["message_opt"]
    stdin = cli["stdin"] or message == "-" or cli["file"] == "-"
    assert (outgoing.topic, outgoing.qos, outgoing.retain, outgoing.timeout, outgoing.failed) == (
        cli["topic"], cli["qos"], cli["retain"], cli["timeout"], cli["failed"]), argv
    assert options.get("via", "auto") == cli["via"] and options.get("profile") == cli["profile"], argv
    assert ("stdin" in options or options.get("file") == "-") == stdin, argv
    assert outgoing.single is not cli["lines"] and ("lines" in options) is cli["lines"], argv
    if "message" in options:
        assert [os.fsencode(options["message"])] == cli["payloads"], argv
    assert options.get("file") == cli["file"], argv


def test_the_quick_path_takes_the_plain_forms() -> None:
    """The common sends do take the quick path (a parser that refused everything would pass the test above)."""
    for argv in (["send", "t", "m"], ["-p", "local", "send", "-q", "0", "-r", "--timeout=5", "t", "-m", "x"],
                 ["send", "-l", "t"], ["send", "-s", "t"], ["send", "-f", FILE, "t"], ["send", "--via", "https", "t", "m"],
                 ["send", "--failed", "out", "t", "--", "-m"]):
        assert parse(argv) is not None, argv


def test_a_file_it_cannot_read_is_left_to_the_cli(tmp_path: Path) -> None:
    from iotnotify.quick.https import read_message

    assert read_message({"file": str(tmp_path / "none")}) is None
    assert read_message({"file": str(tmp_path)}) is None  # a folder


def test_its_longest_timeout_is_clicks() -> None:
    assert MAX_SECONDS == TIMES_MAX_SECONDS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(via=st.sampled_from([None, "", "auto", "mqtt", "https", "HTTPS", "bogus", " auto"]),
       no_agent=st.sampled_from([None, "", "0", "1", "yes", " yes ", "off", "bogus", " "]),
       option=st.sampled_from([[], ["--via", "mqtt"], ["--via", "https"]]))
def test_the_quick_path_reads_the_variables_as_click_does(via: str | None, no_agent: str | None, option: list[str],
                                                         monkeypatch: pytest.MonkeyPatch, no_variables: None,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """IOTNOTIFY_VIA and IOTNOTIFY_NO_AGENT: the way and whether an agent may take the send, as
    click reads them (or, for a value click refuses, left to it)."""
    from iotnotify.quick import environment

    env = {name: value for name, value in (("IOTNOTIFY_VIA", via), ("IOTNOTIFY_NO_AGENT", no_agent)) if value is not None}
    argv = ["send", *option, "t", "m"]
    parsed = parse(argv)
    assert parsed is not None
    quick = environment(parsed[1], env)
    with monkeypatch.context() as patched:  # each example's variables alone
        for name, value in env.items():
            patched.setenv(name, value)
        cli = click_reading(argv, patched)
    capsys.readouterr()
    if quick is not None:
        assert cli is not None, (env, option)
        assert quick == (cli["via"], not cli["no_agent"]), (env, option)
