"""A property-based fuzz of the command line (issue 26): hypothesis makes argv and stdin for `send`,
`subscribe`, `request`, `respond`, `retained` and `keys` from their own flags and the values that
broke them before (NaN, infinity, control and bidi characters, wildcards, over-long topics, bad
encodings...), runs each in-process against the session's stack (AWS's rules on), and holds that
the exit code is one README.md documents (never 1, a bug), that stderr says one line per input
message at most plus the outcome, and never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.helpers import run_in_process, user_env

README = Path(__file__).resolve().parents[1] / "README.md"
EXITS = {int(code) for code in re.findall(r"^\| (\d+) \|", README.read_text().split("## Exit codes")[1], re.M)}
UNREACHABLE = "http://127.0.0.1:9/iot/keys"

ODD = ["nan", "NaN", "inf", "-inf", "1e309", "1e-320", "-1", "0", "1", "65536", "4294967296", "", " ", "0x10",
       "1,2", "nan,1", "1,inf", "a=b", "=", "=x", "hex:zz", "hex:0a", "base64:!!", "utf8", "bytes", "\x00",
       "\x1b]0;x\x07", "\u202e", "\uffff", "\x7f", "a/+/b", "#", "+", "a/#/b", "test/x", "demo/é", "x" * 300,
       "a/" * 9 + "b", "$aws/things/x", "-", "--", "10m", "1e308d", "text/plain"]
GOOD = ["1", "0", "2", "0.5", "3", "test/fuzz", "test/fuzz/reply", "application/json", "k=v", "hex:0a", "utf8",
        "5", "3.1.1", "60", "1,2", "{topic} {payload}", "https", "mqtt"]
values = st.one_of(st.sampled_from(GOOD), st.sampled_from(GOOD), st.sampled_from(ODD), st.text(max_size=12))
topics = st.one_of(st.sampled_from(["test/fuzz", "test/fuzz/a", "test/fuzz/b"]),
                   st.sampled_from(["test/fuzz", "elsewhere/x", "a\x01b", "test/\u202e", "x" * 300, "test/+", "#", "",
                                    "-", "test/fuzz/é", "a/" * 9 + "b", "test/\uffff"]),
                   st.text(min_size=1, max_size=10))

FLAGS = {
    "send": ["-m", "-f", "-q", "--qos", "--timeout", "--connections", "--via", "--user-property", "--content-type",
             "--response-topic", "--correlation-data", "--message-expiry", "--payload-format", "--will-topic",
             "--will-message", "--will-qos", "--will-delay", "--keepalive", "--client-id", "--protocol", "--failed"],
    "subscribe": ["-C", "-W", "-q", "--format", "--max-reconnects", "--session", "--session-expiry",
                  "--reconnect-delay", "--keepalive", "--protocol", "--will-topic", "--will-delay", "--client-id"],
    "request": ["-m", "-C", "-W", "--response-topic", "--correlation-data", "--user-property", "--content-type",
                "--message-expiry", "--payload-format", "--format", "-q", "--protocol"],
    "respond": ["--parallel", "--queue", "--command-timeout", "-C", "--session", "--session-expiry",
                "--reconnect-delay", "-q", "--protocol"],
    "retained": ["-q", "--keepalive"],
    "keys": ["--keys-timeout"],
}
SWITCHES = {"send": ["-r", "-s", "-l", "--records", "--no-agent", "--will-retain"],
            "subscribe": ["-v", "--json", "--pretty", "-N", "--no-retained", "--retained-only", "--quiet",
                          "--partial", "--no-reconnect"],
            "request": ["-v", "--json", "-s"], "respond": ["--quiet", "--partial"], "retained": [],
            "keys": ["--json", "--export", "--url", "--show-secrets"]}

records = st.lists(st.sampled_from([
    b'{"topic":"test/fuzz","payload":"ok"}', b'{"topic":"a\\u0001b","payload":"x"}',
    b'{"topic":"test/fuzz","payload":"x","user_properties":[["a","\\u0000"]]}',
    b'{"topic":"test/fuzz","payload":"x","content_type":"\\u0000"}', b'{"topic":"test/fuzz","qos":7}',
    b'{"topic":"test/fuzz","message_expiry":1e400}', b'{"payload":"no topic"}', b"not json", b"[]", b"null",
    b'{"topic":"test/fuzz","payload":"' + b"x" * 140_000 + b'"}', b"\xff\xfe", b"", b"[" * 5000 + b"]" * 5000,
]), max_size=4).map(b"\n".join)


@st.composite
def command_lines(draw):
    """(argv, stdin) for one of the commands, made of its flags and odd values."""
    command = draw(st.sampled_from(sorted(FLAGS)))
    argv = [command]
    if command == "retained":
        argv.append(draw(st.sampled_from(["list", "get", "clear", "nope"])))
    if command in ("send", "subscribe", "request", "respond", "retained"):
        argv += draw(st.lists(topics, min_size=0, max_size=2))
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            argv += [draw(st.sampled_from(FLAGS[command])), draw(values)]
        elif SWITCHES[command]:
            argv.append(draw(st.sampled_from(SWITCHES[command])))
    if command == "respond":
        argv += ["--", "cat"]
    stdin = draw(records | st.binary(max_size=200))
    return argv, stdin


@pytest.fixture(scope="module")
def fuzz_env(stack, tmp_path_factory):
    """A user of the session's stack (its `local` profile), with folders of its own, in a folder of
    its own (`--failed FILE` and `-f FILE` name files in it)."""
    import os

    from tests.helpers import user_of

    folder = tmp_path_factory.mktemp("fuzz")
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield {**user_of(stack).env, **{k: v for k, v in user_env(folder).items() if k == "XDG_RUNTIME_DIR"}}
    finally:
        os.chdir(before)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(line=command_lines())
def test_any_command_line_is_a_documented_exit_and_a_line_or_so_never_a_traceback(fuzz_env, line):
    argv, stdin = line
    command = argv[0]
    if command in ("subscribe", "request"):
        assume("--" not in argv)  # after it, the -W below would be a filter, and the run would never end
        argv = [*argv, "-W", "0.3"]  # the last -W wins: it ends even when all else is valid
    env = fuzz_env if command != "respond" else {**fuzz_env, "IOTNOTIFY_ENDPOINT": UNREACHABLE,
                                                  "IOTNOTIFY_PROFILE": ""}  # respond would serve for ever
    result = run_in_process(argv, env, stdin)
    event(f"{command} exit {result.returncode}")
    assert result.returncode in EXITS - {1}, (argv, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, (argv, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) <= stdin.count(b"\n") + 3, (argv, result.stderr)  # a line a message, status and outcome
    assert not any(line.startswith(("  File ", "Exception ")) for line in lines), (argv, result.stderr)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stdin=records)
def test_replayed_records_of_any_shape_are_sent_or_each_refused_in_a_line(fuzz_env, stdin):
    result = run_in_process(["send", "--records", "test/fuzz"], fuzz_env, stdin)
    event(f"exit {result.returncode}")
    assert result.returncode in (0, 6, 10), result.stderr  # all sent; some refused before sending (counted)
    lines = result.stderr.splitlines()
    assert len(lines) <= stdin.count(b"\n") + 2 and "Traceback" not in result.stderr, result.stderr
