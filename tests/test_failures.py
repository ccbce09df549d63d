"""What users see when the broker is unreachable, TLS fails, the broker refuses messages, or input
breaks AWS IoT Core's limits: one line on stderr and the documented exit code."""

from pathlib import Path

import pytest

from iotnotify.errors import UsageError
from iotnotify.keys import endpoint_source
from iotnotify.local.tls import ensure_tls_files
from iotnotify.mqtt import ConnectOptions, open_session
from iotnotify.send import Publisher, SendResult
from tests.helpers import Cli, free_port, tutorial_keys, user_env

AWS_HOST = "abc123example-ats.iot.us-east-1.amazonaws.com"


def one_line(result) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["send", "t", "x"], ["subscribe", "t"]])
def test_broker_unreachable(fake_endpoint, tmp_path, command):
    port = free_port()
    fake_endpoint.answer(body=tutorial_keys(port=port))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, *command)
    assert result.returncode == 5
    assert one_line(result) == f"iotnotify: error: broker 127.0.0.1:{port} is unreachable (AWS_IO_SOCKET_CONNECTION_REFUSED)"


def test_tls_failure_without_the_private_ca(stack, tmp_path):
    result = Cli(user_env(tmp_path)).run("--endpoint", stack.endpoint, "send", "test/tls", "x", timeout=60)
    assert result.returncode == 5
    assert one_line(result).startswith(f"iotnotify: error: TLS failure with broker 127.0.0.1:{stack.wss_port}")
    assert "check --ca-file" in result.stderr


def test_tls_failure_with_another_ca(stack, tmp_path):
    other = ensure_tls_files(tmp_path / "other-ca")
    result = Cli(user_env(tmp_path)).run("--endpoint", stack.endpoint, "--ca-file", str(other.ca_file),
                                         "send", "test/tls", "x", timeout=60)
    assert result.returncode == 5
    assert "TLS failure" in one_line(result)


def test_missing_ca_file(stack, tmp_path):
    result = Cli(user_env(tmp_path)).run("--endpoint", stack.endpoint, "--ca-file", "/nonexistent.pem", "send",
                                         "test/tls", "x")
    assert result.returncode == 5
    assert one_line(result) == "iotnotify: error: CA file /nonexistent.pem does not exist"


@pytest.fixture(scope="module")
def strict_broker(stack, tmp_path_factory):
    """A second Mosquitto (local/broker.py's) whose ACL lets clients use only `allowed/#` (so it
    refuses other publishes), behind a wss front with the local stack's certificate."""
    from iotnotify.local.broker import Broker
    from iotnotify.local.front import WebSocketFront

    folder = tmp_path_factory.mktemp("strict")
    (folder / "acl").write_text("topic readwrite allowed/#\n")
    broker = Broker(folder / "broker", free_port())
    broker.extra_config = f"acl_file {folder / 'acl'}\n"
    broker.start()
    front = WebSocketFront(free_port(), broker.port, ensure_tls_files(Path(stack.ca_file).parent))
    front.start()
    yield front.port
    front.stop()
    broker.stop()


def test_send_exits_10_when_the_broker_refuses_the_message(strict_broker, fake_endpoint, stack, tmp_path):
    """Another broker (Mosquitto with an ACL) refusing with MQTT 5's "not authorized": the keys of the
    tutorial's endpoint say nothing of their topics, so only the broker can refuse."""
    fake_endpoint.answer(body=tutorial_keys(port=strict_broker))
    cli = Cli(user_env(tmp_path))
    base = ["--endpoint", fake_endpoint.url, "--ca-file", stack.ca_file]
    assert cli.run(*base, "send", "allowed/x", "fine").returncode == 0
    result = cli.run(*base, "send", "denied/x", "refused")
    assert result.returncode == 10
    assert one_line(result) == ("iotnotify: error: 1 of 1 message was not delivered "
                                "(1 refused by the broker: 0x87 not authorized to publish to 'denied/x')")
    lines = cli.run(*base, "send", "-l", "denied/x", input="a\nb\nc\n")
    assert lines.returncode == 10 and "3 of 3 messages were not delivered (3 refused by the broker" in lines.stderr


@pytest.mark.parametrize("args, stdin, message", [
    (["send", "a/b/c/d/e/f/g/h/i", "x"], None, "topic 'a/b/c/d/e/f/g/h/i' has 8 '/' but AWS IoT Core allows at most 7"),
    (["send", "-s", "big"], b"x" * (128 * 1024 + 1), "payload of 131073 bytes is over AWS IoT Core's limit of 131072 bytes"),
    (["subscribe", "a/+/c/d/e/f/g/h/#"], None, "filter 'a/+/c/d/e/f/g/h/#' has 8 '/' but AWS IoT Core allows at most 7"),
])
def test_aws_limits_are_checked_before_connecting(fake_endpoint, tmp_path, args, stdin, message):
    fake_endpoint.answer(body=tutorial_keys(AWS_HOST))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, *args, input=stdin)
    assert result.returncode == 2
    assert one_line(result) == f"iotnotify: error: {message}"


def test_publisher_refuses_a_payload_over_the_aws_limit_and_sends_the_rest(stack):
    source = endpoint_source(stack.endpoint, 5)
    connection = open_session(source, ConnectOptions(ca_file=stack.ca_file))
    try:
        connection.aws = True  # a real connection held to AWS IoT Core's payload limit
        publisher = Publisher(connection, "test/limit", 1, False)
        publisher.publish(b"small")
        with pytest.raises(UsageError, match="over AWS IoT Core's limit"):
            publisher.publish(b"x" * (128 * 1024 + 1))
        result = publisher.wait(10)
        assert (result.sent, result.acked, result.failed) == (1, 1, 0)
    finally:
        connection.disconnect()


@pytest.fixture
def refusing_gateway(stack):
    """A TLS server that answers every WebSocket upgrade with 403, as AWS IoT does for bad keys."""
    import http.server
    import ssl
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"message":"Forbidden"}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    folder = Path(stack.ca_file).parent
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server-key.pem")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_keys_refused_by_the_broker(refusing_gateway, fake_endpoint, stack, tmp_path, protocol):
    fake_endpoint.answer(body=tutorial_keys(port=refusing_gateway))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "--ca-file", stack.ca_file,
                                         "send", "--protocol", protocol, "t", "x")
    assert result.returncode == 5
    assert one_line(result).startswith(f"iotnotify: error: broker 127.0.0.1:{refusing_gateway} refused the "
                                       "MQTT WebSocket connection")
    assert "SECRET" not in result.stderr and "TOKEN" not in result.stderr


def test_publishes_report_acknowledged_and_refused_messages(strict_broker, stack):
    """Each message's outcome is the broker's: 200 acknowledged, one refused (0x87) and kept."""
    from iotnotify.keys import KeySource, parse_keys

    keys = parse_keys(tutorial_keys(port=strict_broker))
    connection = open_session(KeySource("strict", lambda: keys), ConnectOptions(ca_file=stack.ca_file))
    try:
        publisher = Publisher(connection, "allowed/x", 1, False)
        for i in range(200):
            publisher.publish(b"%d" % i)
        denied = Publisher(connection, "denied/x", 1, False)
        denied.publish(b"no")
        assert publisher.wait(10) == SendResult(200, 200, 0)
        assert denied.wait(10) == SendResult(1, 0, 1, refused=1)
        assert denied.refusal is not None and (denied.refusal.kind.value, denied.refusal.code) == ("refused", 0x87)
        assert denied.undelivered() == {1: b"no"}
    finally:
        connection.disconnect()
