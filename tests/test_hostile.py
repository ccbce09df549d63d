"""What a hostile peer, keys endpoint, proxy or broker can do to the commands, and what a careless
user's input does (issue 26): a connection the broker ends is made again for the long-running
commands, every exchange over HTTP has one deadline, what they say reaches the terminal escaped
and cut, and bad input is one line and the documented exit code."""

import contextlib
import json
import socket
import threading
import time
import urllib.request

import pytest

from iotnotify.errors import Refused
from iotnotify.keys import endpoint_source
from iotnotify.mqtt import ConnectOptions, State
from iotnotify.send import publish_one
from iotnotify.subscribe import subscribe
from tests.helpers import Cli, free_port, run_in_process, tutorial_keys, user_env, wait_for


@contextlib.contextmanager
def raw_server(answer):
    """A TCP server on loopback whose every connection `answer(sock)` handles, in a thread of its own."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed: the test is over
            threading.Thread(target=_handle, args=(answer, sock, stop), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def _handle(answer, sock, stop) -> None:
    with contextlib.suppress(OSError), sock:
        sock.settimeout(60)
        sock.recv(65536)  # the request
        answer(sock, stop)


def drip(data: bytes, every: float = 0.5):
    """An answer that sends `data` a byte every `every` seconds (a server or proxy slow on purpose)."""
    def answer(sock, stop) -> None:
        for byte in data:
            if stop.is_set():
                return
            sock.sendall(bytes([byte]))
            time.sleep(every)

    return answer


def at_once(data: bytes):
    def answer(sock, _stop) -> None:
        sock.sendall(data)

    return answer


def one_line(result) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- item 1: a connection the broker ends is made again, for commands that run for days -------------------

def keys_that_state_nothing(stack) -> dict:
    """The stack's keys without their allowance (as the tutorial's endpoint answers): the client
    cannot check a publish before it goes, and the broker ends the connection for one it refuses."""
    keys = json.load(urllib.request.urlopen(stack.endpoint))
    keys.pop("topics")
    keys.pop("privateTopic", None)
    return keys


@pytest.mark.parametrize("long_running", [True, False])
def test_a_connection_the_broker_ends_is_made_again_only_for_long_running_commands(stack, fake_endpoint, cli, topic,
                                                                                   long_running):
    fake_endpoint.answer(body=keys_that_state_nothing(stack))
    states, dropped = [], []
    options = ConnectOptions(ca_file=stack.ca_file, long_running=long_running, min_reconnect_delay=0.2)
    connection, inbox = subscribe(endpoint_source(fake_endpoint.url, 10), options, [topic], 1,
                                  on_state=lambda state, _attempt: states.append(state), on_dropped=dropped.append)
    with connection:
        publish_one(connection, "elsewhere/x", b"refused", 0, None)  # AWS's rules: 0x87, the connection closed
        if not long_running:
            wait_for(lambda: connection.fatal is not None, 10, "the connection to fail")
            assert isinstance(connection.fatal, Refused)
            assert dropped == []
            return
        wait_for(lambda: states[-1:] == [State.CONNECTED] and State.RECONNECTING in states, 20, "a reconnection")
        assert connection.fatal is None
        [error] = dropped
        assert "closed the connection: 0x87 not authorized to publish to 'elsewhere/x'" in str(error)
        assert cli.run("send", topic, "after").returncode == 0  # subscribed again on the new connection
        assert next(inbox.messages(timeout=10)).payload == b"after"


# --- item 4: one deadline for the whole exchange with a keys endpoint or a proxy --------------------------

@pytest.mark.parametrize("command", [["keys"], ["send", "test/x", "hi"], ["subscribe", "test/x"]])
def test_a_keys_endpoint_that_drips_its_answer_is_given_up_on_at_the_keys_timeout(tmp_path, command):
    with raw_server(drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b" " * 100)) as port:
        started = time.monotonic()
        result = Cli(user_env(tmp_path)).run("--keys-timeout", "2", *command, "--endpoint",
                                             f"http://127.0.0.1:{port}/iot/keys", timeout=30)
        took = time.monotonic() - started
    assert result.returncode == 4
    url = f"http://127.0.0.1:{port}/iot/keys"
    assert one_line(result) == f"iotnotify: error: keys endpoint {url} did not answer within 2 s"
    assert took < 10  # the drip would last a minute


def test_a_proxy_that_drips_is_given_up_on_at_the_keys_timeout(tmp_path):
    with raw_server(drip(b"HTTP/1.1 200 Connection established\r\n\r\n")) as port:
        started = time.monotonic()
        result = Cli(user_env(tmp_path)).run("--keys-timeout", "2", "keys", "--endpoint",
                                             "https://keys.example/iot/keys", "--proxy", f"http://127.0.0.1:{port}")
        took = time.monotonic() - started
    assert result.returncode == 4
    assert one_line(result).endswith(f"did not answer within 2 s (through proxy http://127.0.0.1:{port})")
    assert took < 10


# --- item 7: what http.client refuses is a one-line keys error, not an internal one -----------------------

@pytest.mark.parametrize("answer, said", [
    (b"HTTP/1.1 200 " + b"A" * 70_000 + b"\r\n\r\n", "LineTooLong"),
    (b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 101 + b"\r\n{}", "got more than 100 headers"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + b" " * 2_000_000, "the answer is over 1048576 bytes"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n" + b"[" * 30_000 + b"]" * 30_000, "did not answer JSON"),
])
def test_a_malformed_or_huge_answer_is_a_keys_error(tmp_path, answer, said):
    with raw_server(at_once(answer)) as port:
        result = run_in_process(["keys", "--endpoint", f"http://127.0.0.1:{port}/iot/keys"], user_env(tmp_path))
    assert result.returncode == 4
    line = one_line(result)
    assert said in line and len(line) < 400


# --- item 9: what a proxy, endpoint or broker says reaches the terminal escaped and cut ------------------

def test_a_proxys_status_line_is_escaped_and_cut(fake_endpoint, tmp_path):
    status = b"HTTP/1.1 403 \x1b]0;pwned\x07" + b"B" * 65_000 + b"\r\n\r\n"
    with raw_server(at_once(status)) as proxy:
        fake_endpoint.answer(body=tutorial_keys(port=free_port()))  # the keys come directly (an http URL)...
        env = {**user_env(tmp_path), "HTTPS_PROXY": f"http://127.0.0.1:{proxy}"}  # ...the broker through the proxy
        result = Cli(env).run("--endpoint", fake_endpoint.url, "subscribe", "test/x", timeout=60)
    assert result.returncode == 5
    line = one_line(result)
    assert "\x1b" not in line and "\x07" not in line and len(line) < 600
    assert f"proxy http://127.0.0.1:{proxy} refused the tunnel to 127.0.0.1:" in line
    assert "HTTP/1.1 403 \\x1b]0;pwned\\x07BBB" in line and "bytes in all)" in line


@pytest.mark.parametrize("fields, said", [({"port": "²"}, "'port' must be a port number"),
                                          ({"accessKey": "ASIA\x1b]0;x\x07"}, "'accessKey' holds characters no AWS key"),
                                          ({"sessionToken": "tok\u202en"}, "'sessionToken' holds characters")])
def test_keys_no_aws_answer_holds_are_a_keys_error(fake_endpoint, tmp_path, fields, said):
    fake_endpoint.answer(body=tutorial_keys(**fields))
    result = run_in_process(["keys", "--export", "--endpoint", fake_endpoint.url], user_env(tmp_path))
    assert result.returncode == 4
    assert said in one_line(result) and result.stdout == ""


def test_the_keys_the_endpoint_describes_are_shown_escaped(fake_endpoint, tmp_path):
    fake_endpoint.answer(body=tutorial_keys(port=8883, clientId="c\x1b]0;x\x07\u202e", topics=["a/\u202eb"]))
    result = run_in_process(["keys", "--endpoint", fake_endpoint.url], user_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "c\\x1b]0;x\\x07\\u202e" in result.stdout


def test_tails_view_escapes_topics_payloads_and_properties():
    from rich.console import Console

    from iotnotify.cli.live import TailState, render
    from iotnotify.messages import Message
    from iotnotify.properties import Properties

    state = TailState(5)
    state.add(Message("a/\x1b[2J\u202e", b"\x1b]0;pwned\x07 text", properties=Properties(content_type="\x1b[31m")))
    state.dropped = "x"
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    console.print(render(state, 160, 10))
    text = console.export_text()
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "a/\\x1b[2J\\u202e" in text and "\\x1b]0;pwned\\x07 text" in text


DEEP = b"[" * 60_000 + b"]" * 60_000  # 120 KB, under AWS IoT Core's limit: json.loads raises RecursionError


@pytest.mark.parametrize("style", [{"pretty": True}, {"template": "{json}"}, {"json_lines": True}, {}])
def test_a_payload_nested_too_deep_for_json_is_printed_as_it_is(style):
    from iotnotify.messages import Message
    from iotnotify.output import OutputStyle, formatter, preview

    out = formatter(OutputStyle(**style))(Message("t", DEEP))
    assert DEEP[:100].decode() in out.decode()
    assert preview(DEEP, 40) == ("[" * 39 + "…", "text")


def test_a_record_nested_too_deep_is_refused_as_a_record(tmp_path):
    from iotnotify.errors import UsageError
    from iotnotify.records import parse_record

    with pytest.raises(UsageError, match="nested too deep"):
        parse_record(DEEP, "t", 1, False)


def test_an_error_message_is_escaped_and_cut_whatever_it_holds():
    from iotnotify.errors import KeysError, one_line

    line = one_line(KeysError("the endpoint said \x1b]0;x\x07\u202e" + "y" * 5000))
    assert "\x1b" not in line and "\u202e" not in line and len(line) < 2100
    assert line.startswith("error: the endpoint said \\x1b]0;x\\x07\\u202e")


# --- item 8: the local stack's Cognito takes any request without a traceback or a held thread -----------

@pytest.mark.parametrize("length, body, status", [
    ("abc", b"{}", 400), ("-5", b"{}", 400), ("70000", b"", 413),
    (None, b"[" * 30_000 + b"]" * 30_000, 400),  # 30,000 deep: RecursionError in json
])
def test_the_local_cognito_answers_bad_requests_with_a_4xx(stack, length, body, status):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", stack.keys_port, timeout=10)
    headers = {"X-Amz-Target": "AWSCognitoIdentityService.GetId", "Content-Length": length or str(len(body))}
    connection.request("POST", "/cognito", body=body, headers=headers)
    answer = connection.getresponse()
    assert answer.status == status
    assert json.loads(answer.read())["__type"] == "SerializationException"
    assert "Traceback" not in stack.log()


def test_the_local_cognito_forgets_the_oldest_identities():
    from iotnotify.cognito.local import POOL_ID, LocalCognito
    from iotnotify.server.config import EndpointConfig

    cognito = LocalCognito(EndpointConfig(topics=("a/*",)), issuer=None, limit=3)
    made = [json.loads(json.dumps(cognito.answer("AWSCognitoIdentityService.GetId",
                                                 json.dumps({"IdentityPoolId": POOL_ID}).encode()).body))
            for _ in range(5)]
    assert len(cognito._identities) == 3
    assert list(cognito._identities) == [m["IdentityId"] for m in made[2:]]


# --- item 11: the Lambda answers keys at the keys path only ----------------------------------------------

@pytest.mark.parametrize("path, status", [("/iot/keys", 200), ("/prod/iot/keys", 200), ("/favicon.ico", 404),
                                          ("/static/nope.js", 404), ("/iot/keys/x", 404), ("/", 200)])
def test_the_lambda_answers_keys_at_the_keys_path_only(monkeypatch, path, status):
    from iotnotify.local.keys_server import LocalIssuer
    from iotnotify.server import handler
    from iotnotify.server.config import EndpointConfig

    monkeypatch.setitem(handler._state, "config", EndpointConfig(topics=("a/*",)))
    monkeypatch.setitem(handler._state, "issuer", LocalIssuer("127.0.0.1", 9443))
    response = handler.handler({"version": "2.0", "rawPath": path, "requestContext": {"http": {"method": "GET"}}})
    assert response["statusCode"] == status
    assert ("secretKey" in response["body"]) is (path.endswith("/iot/keys"))


# --- item 12 and the numbers: what the broker would refuse is refused before connecting -----------------

UNREACHABLE = "http://127.0.0.1:9/iot/keys"  # nothing is fetched: exit 2 means refused before


@pytest.mark.parametrize("args, said", [
    (["send", "demo/a\x01b", "x"], "contains U+0001 (a control character)"),
    (["send", "demo/a\x7fb", "x"], "contains U+007F (a control character)"),
    (["send", "demo/\uffff", "x"], "contains U+FFFF (a Unicode noncharacter)"),
    (["subscribe", "demo/\x1b/#"], "contains U+001B (a control character)"),
    (["request", "demo/\x00", "x"], "contains U+0000"),
    (["send", "demo/x", "y", "--user-property", "k=\x00"], "contains U+0000"),
    (["send", "demo/x", "y", "--response-topic", "r/\x01"], "contains U+0001"),
    (["subscribe", "demo/x", "-W", "nan"], "'nan' is not a finite number of seconds"),
    (["subscribe", "demo/x", "-W", "inf"], "'inf' is not a finite number of seconds"),
    (["send", "demo/x", "y", "--timeout", "nan"], "'nan' is not a finite number of seconds"),
    (["request", "demo/x", "y", "-W", "1e300"], "at most 3.1536e+07 seconds (a year)"),
    (["--keys-timeout", "inf", "keys"], "'inf' is not a finite number of seconds"),
    (["subscribe", "demo/x", "--reconnect-delay", "1,inf"], "need 0 < MIN <= MAX"),
    (["subscribe", "demo/x", "--reconnect-delay", "nan,1"], "need 0 < MIN <= MAX"),
    (["agent", "start", "--idle", "1e308d"], "is not a duration"),
    (["subscribe", "demo/x", "-C", "100000000000000000000"], "is not in the range 1<=x<=1000000000"),
    (["tail", "demo/x", "-n", "100000000000000000000"], "is not in the range 1<=x<=10000"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_is_fetched(tmp_path, args, said):
    result = run_in_process([*args, "--endpoint", UNREACHABLE], user_env(tmp_path))
    assert result.returncode == 2, result.stderr
    assert said in one_line(result)


@pytest.mark.parametrize("variable, value", [("IOTNOTIFY_KEYS_TIMEOUT", "nan"), ("IOTNOTIFY_KEYS_TIMEOUT", "inf")])
def test_a_variable_that_cannot_work_is_one_line_and_exit_2(tmp_path, variable, value):
    result = Cli({**user_env(tmp_path), variable: value}).run("send", "demo/x", "y", "--endpoint", UNREACHABLE)
    assert result.returncode == 2
    assert variable in one_line(result)


@pytest.mark.parametrize("args, said", [
    (["--client-id", "\x1f"], "--client-id '\\x1f' contains U+001F (a control character)"),
    (["--client-id", "c" * 129], "--client-id is 129 UTF-8 bytes, over AWS IoT Core's 128"),
    (["--session", "s\x00"], "--session 's\\x00' contains U+0000"),
])
def test_a_client_id_the_broker_would_refuse_is_refused_before_connecting(cli, topic, args, said):
    """Found by the fuzz: awscrt raised a RuntimeError (an internal error, exit 1) for these."""
    result = run_in_process(["subscribe", topic, "-W", "1", *args], cli.env)
    assert result.returncode == 2
    assert said in one_line(result)
