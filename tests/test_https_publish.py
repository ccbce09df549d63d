"""send over HTTPS (AWS IoT Core's POST /topics/TOPIC, SigV4 service iotdata): the local stack's
answers, one message going that way by itself, --via, and the way back to MQTT for a broker that
takes no HTTPS publish."""

from __future__ import annotations

import http.client
import io
import json
import signal
import ssl

import pytest

from iotnotify.mqtt.https import path_for
from tests.helpers import Cli, acknowledged, broker_behind_front, imports_of, tutorial_keys, user_env
from tests.test_aws_rules import finish, scoped, unlisted


def signed_post(keys: dict, port: int, target: str, body: bytes, signed_body: bytes | None = None,
                service: str = "iotdata") -> dict[str, str]:
    """The headers of a POST signed as awscrt signs it (over `signed_body`, if given, instead of `body`)."""
    from awscrt import auth
    from awscrt import http as crt_http

    request = crt_http.HttpRequest("POST", target, crt_http.HttpHeaders(
        [("Host", f"127.0.0.1:{port}"), ("Content-Length", str(len(body)))]),
        io.BytesIO(body if signed_body is None else signed_body))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(
            keys["accessKey"], keys["secretKey"], keys["sessionToken"]),
        region=keys["region"], service=service)
    auth.aws_sign_request(request, config).result(5)
    return dict(request.headers)


def post(stack, target: str, body: bytes, headers: dict[str, str], method: str = "POST") -> tuple[int, dict]:
    context = ssl.create_default_context(cafile=stack.ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", stack.wss_port, context=context, timeout=10)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text else {}
    finally:
        connection.close()


@pytest.fixture
def keys(cli: Cli) -> dict:
    return json.loads(cli.run("keys", "--json").stdout)


def test_the_stack_takes_a_signed_publish_and_the_subscriber_gets_it(stack, cli, keys, topic, tmp_path):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20")
    target = path_for(topic, 1, False)
    assert post(stack, target, b"over https", signed_post(keys, stack.wss_port, target, b"over https")) == (200, {})
    assert finish(sub)[1] == "over https\n"


def test_the_stack_refuses_what_aws_iot_core_refuses(stack, keys, topic):
    def answer(target: str, body: bytes = b"x", **kwargs: object) -> tuple[int, str]:
        status, found = post(stack, target, body, signed_post(keys, stack.wss_port, target, body, **kwargs))
        return status, found.get("message", "")

    assert answer(path_for(topic, 1, False), b"tampered", signed_body=b"signed") == (
        403, "forbidden: signature does not match")
    assert answer(path_for(topic, 1, False), service="iotdevicegateway") == (403, "forbidden: wrong credential scope")
    assert answer(path_for("elsewhere/x", 1, False)) == (401, "iot:Publish to 'elsewhere/x' not allowed")
    assert answer(path_for("$aws/events/presence/connected/c1", 0, False)) == (  # a reserved topic: AWS's own
        401, "topic '$aws/events/presence/connected/c1': reserved by AWS IoT Core for subscribe only")
    assert answer(f"/topics/{topic}?qos=2")[0] == 400
    assert answer(path_for("a/+/b", 0, False))[0] == 400
    assert answer(path_for(topic, 1, False), b"x" * (128 * 1024 + 1))[0] == 413
    unsigned = post(stack, path_for(topic, 1, False), b"x", {})
    assert unsigned == (403, {"message": "forbidden: missing or malformed Authorization header",
                              "__type": "ForbiddenException"})
    assert post(stack, "/elsewhere", b"", {})[0] == 404


def test_one_message_goes_over_https_by_itself_and_never_shows_a_secret(cli, keys, topic, tmp_path):
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20")
    sent = cli.run("send", topic, "hi", "--debug")
    assert sent.returncode == 0, sent.stderr
    assert f"HTTPS publish to '{topic}': 200 in" in sent.stderr
    assert "CONNACK" not in sent.stderr
    assert keys["secretKey"] not in sent.stderr and keys["sessionToken"] not in sent.stderr
    assert finish(sub)[1] == "hi\n"


def test_a_plain_send_over_https_loads_no_click(cli, topic):
    """The quick path (quick/https.py): no click, no awsiotsdk, no MQTT client."""
    assert cli.run("keys").returncode == 0  # cached
    imported = imports_of(cli.env, "send", topic, "quick")
    assert "iotnotify.mqtt.https" in imported
    assert not {"click", "awsiot", "awscrt.mqtt5", "awscrt.mqtt", "iotnotify.mqtt.v5"} & imported


def test_a_send_configured_by_variables_alone_parses_no_toml(cli, stack, topic, tmp_path):
    """No config file (settings from IOTNOTIFY_* variables, as in a CI step): tomllib, 3-7 ms of a cold
    send's start, is not imported; with the profile's file it is."""
    env = {**cli.env, "IOTNOTIFY_CONFIG": str(tmp_path / "none.toml"), "IOTNOTIFY_ENDPOINT": stack.endpoint,
           "IOTNOTIFY_CA_FILE": stack.ca_file}
    del env["IOTNOTIFY_PROFILE"]
    by_variables, by_profile = imports_of(env, "send", topic, "variables"), imports_of(cli.env, "send", topic, "profile")
    assert "iotnotify.mqtt.https" in by_variables and "iotnotify.mqtt.https" in by_profile
    assert "tomllib" not in by_variables and "tomllib" in by_profile


def test_via_https_streams_lines_in_order_on_one_connection(cli, topic, tmp_path):
    sub = cli.subscriber(tmp_path, topic, "-C", "3", "-W", "20")
    sent = cli.run("send", "--via", "https", "-l", topic, "--debug", input=b"a\nb\nc\n")
    assert sent.returncode == 0, sent.stderr
    assert sent.stderr.count("HTTPS connection to") == 1 and sent.stderr.count(": 200 in") == 3
    assert finish(sub)[1] == "a\nb\nc\n"


def test_a_publish_the_keys_may_not_make_is_refused_by_the_broker_exit_10(cli, stack, tmp_path, topic, fake_endpoint):
    narrow = scoped(cli, stack, f"{topic}/mine", tmp_path)
    flags = [*unlisted(json.loads(narrow.run("keys", "--json").stdout), fake_endpoint), "--no-cache"]
    failed = tmp_path / "failed.txt"
    sent = cli.run(*flags, "send", f"{topic}/other", "no", "--failed", str(failed))
    assert sent.returncode == 10
    assert sent.stderr == (f"iotnotify: error: 1 of 1 message was not delivered (1 refused by the broker: 0x87 not "
                           f"authorized to publish to '{topic}/other'; the broker said: HTTP 401: iot:Publish to "
                           f"'{topic}/other' not allowed); saved to {failed}\n")
    assert failed.read_bytes() == b"no\n"
    retained = cli.run(*flags, "send", "--via", "https", "-r", f"{topic}/mine", "kept")
    assert retained.returncode == 0, retained.stderr  # the session policy lets the role's iot:RetainPublish through


@pytest.mark.parametrize("flags, said", [
    (["--will-topic", "w"], "--will-topic needs an MQTT connection: not with --via https"),
    (["--connections", "2", "-l"], "--connections needs MQTT: not with --via https"),
    (["--content-type", "text/plain"], "message properties need MQTT: not with --via https"),
])
def test_what_only_mqtt_can_do_is_refused_with_via_https(cli, topic, flags, said):
    args = ["send", "--via", "https", *flags, topic] + ([] if "-l" in flags else ["x"])
    done = cli.run(*args, input=b"x\n")
    assert done.returncode == 2
    assert done.stderr == f"iotnotify: error: {said}\n"


@pytest.mark.mosquitto
def test_a_broker_without_https_publish_gets_the_message_over_mqtt(fake_endpoint, tmp_path, topic):
    """A front that takes WebSocket upgrades only (not AWS's data endpoint): by itself `send` goes
    over MQTT after all; asked for HTTPS, it says the broker takes none (exit 5)."""
    with broker_behind_front(tmp_path) as (_broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        cli = Cli(user_env(tmp_path))
        base = ["--endpoint", fake_endpoint.url, "--ca-file", ca_file, "send"]
        auto = cli.run(*base, topic, "x", "--debug")
        assert auto.returncode == 0, auto.stderr
        assert "over MQTT instead" in auto.stderr and "PUBACK" in auto.stderr
        asked = cli.run(*base, "--via", "https", topic, "x")
        assert asked.returncode == 5
        assert asked.stderr.startswith(f"iotnotify: error: broker 127.0.0.1:{wss} closed the connection without "
                                       "answering an HTTPS publish (not an AWS IoT data endpoint?): send with --via mqtt")


@pytest.mark.mosquitto
@pytest.mark.parametrize("form", [["x"], ["-s"], ["-f", "-"]], ids=["argument", "stdin", "file-stdin"])
def test_the_quick_path_takes_mqtt_after_a_broker_without_https_publish(fake_endpoint, tmp_path, topic, form):
    """Settings from variables alone (the quick path's plain form, no click): the HTTPS way fails
    with nothing delivered, and the route's next way, MQTT, sends what was read, stdin too, from
    the same process; --failed gets nothing."""
    with broker_behind_front(tmp_path) as (broker, wss, ca_file):
        fake_endpoint.answer(body=tutorial_keys(port=wss))
        env = {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": fake_endpoint.url, "IOTNOTIFY_CA_FILE": ca_file}
        failed = tmp_path / "failed"
        sent = Cli(env).run("send", "--failed", str(failed), topic, *form, input=b"x")
        assert (sent.returncode, sent.stderr) == (0, "")
        assert acknowledged(broker) == 1
        assert not failed.exists()
        assert imports_of(env, "send", topic, "y").isdisjoint({"click"})  # the quick path took it


@pytest.mark.parametrize("form", [["-s"], ["-l"]], ids=["stdin", "lines"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_a_send_waits_for_stdin_ends_it_in_one_line(cli, topic, form, signum):
    """SIGTERM or Ctrl-C while `send` waits for its input (the quick path reading stdin, or a stream
    of lines): 'interrupted', exit 143 or 130, no traceback."""
    import subprocess
    import time

    sender = cli.start("send", topic, *form, stdin=subprocess.PIPE)
    time.sleep(1.5)  # reading stdin by now (the imports took less)
    sender.send_signal(signum)
    _out, err = sender.communicate(timeout=20)
    assert sender.returncode == (143 if signum == signal.SIGTERM else 130), err
    assert err.decode().splitlines()[-1].startswith("iotnotify: interrupted"), err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("via, protocol", [([], "5"), ([], "3.1.1"), (["--via", "mqtt"], "5"), (["--via", "https"], "5")],
                         ids=["auto", "auto-mqtt-3.1.1", "mqtt", "https"])
def test_the_quick_path_leaves_stdin_to_a_login_file_that_reads_it(cli, topic, tmp_path, via, protocol):
    """IOTNOTIFY_LOGIN_FILE=- (the logins on stdin): the quick path reads no stdin for settings (to
    find the way: MQTT 3.1.1 makes it MQTT, the CLI's); the CLI reads the logins, the send goes out."""
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20")
    sent = cli.run("send", *via, topic, "m", env={"IOTNOTIFY_LOGIN_FILE": "-", "IOTNOTIFY_PROTOCOL": protocol},
                   input=b"provider=token\n")
    assert (sent.returncode, sent.stderr) == (0, "")
    assert sub.communicate(timeout=30)[0] == b"m\n"
