"""The local wss front checks each WebSocket upgrade's SigV4 signature against the keys the local
endpoint minted, as AWS IoT does: unknown, wrong, tampered, unsigned and expired keys get HTTP 403."""

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from awscrt import auth, http

from iotnotify.local.sigv4 import KnownKeys, check_upgrade
from iotnotify.local.stack import LocalStack, StackConfig
from tests.helpers import IOTNOTIFY, Cli, free_port, tutorial_keys, user_env, wait_for


def signed_path(keys: dict, host: str, when: dt.datetime | None = None, expires: int | None = None) -> str:
    """/mqtt signed as awsiotsdk signs it: query parameters, then the session token appended (with
    `expires`, a presigned URL that lasts that many seconds)."""
    request = http.HttpRequest("GET", "/mqtt", http.HttpHeaders([("Host", host), ("Connection", "Upgrade")]))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(keys["accessKey"], keys["secretKey"],
                                                                    keys["sessionToken"]),
        region=keys["region"], service="iotdevicegateway", omit_session_token=True,
        expiration_in_seconds=expires, **({"date": when} if when else {}))
    auth.aws_sign_request(request, config).result(5)
    return request.path


def upgrade(port: int, ca_file: str, path: str, extra: str = "") -> tuple[int, str]:
    """Send a WebSocket upgrade for `path` (and `extra` header lines) to the front; its HTTP status and body."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                      f"Sec-WebSocket-Protocol: mqtt\r\n{extra}\r\n").encode())
        answer = sock.recv(4096).decode()
    status = int(answer.split()[1])
    return status, answer.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in answer else ""


def with_param(path: str, name: str, value: str | None) -> str:
    """`path` with one query parameter replaced (or removed, for None)."""
    url = urlsplit(path)
    params = [(k, v) for k, v in parse_qsl(url.query) if k != name] + ([(name, value)] if value is not None else [])
    return url.path + "?" + urlencode(params)


@pytest.fixture
def minted(cli):
    return json.loads(cli.run("keys", "--json", "--no-cache").stdout)


def test_a_correct_signature_is_accepted(stack, minted):
    assert upgrade(stack.wss_port, stack.ca_file, signed_path(minted, "127.0.0.1"))[0] == 101


@pytest.mark.parametrize("change, reason", [
    (lambda p: with_param(p, "X-Amz-Signature", "0" * 64), "signature does not match"),
    (lambda p: with_param(p, "X-Amz-Signature", None), "missing signature"),
    (lambda p: "/mqtt", "missing signature"),
    (lambda p: with_param(p, "X-Amz-Security-Token", "not-the-token"), "wrong session token"),
    (lambda p: with_param(p, "X-Amz-Date", "20200101T000000Z"), "wrong credential scope"),
])
def test_tampered_or_unsigned_upgrades_are_refused(stack, minted, change, reason):
    assert upgrade(stack.wss_port, stack.ca_file, change(signed_path(minted, "127.0.0.1"))) == (403, f"forbidden: {reason}\n")


def test_a_presigned_url_is_refused_once_its_x_amz_expires_has_passed(stack, minted):
    three_seconds_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=3)
    assert upgrade(stack.wss_port, stack.ca_file, signed_path(minted, "127.0.0.1", three_seconds_ago, expires=1)) == (
        403, "forbidden: signature expired\n")
    assert upgrade(stack.wss_port, stack.ca_file, signed_path(minted, "127.0.0.1", three_seconds_ago, expires=60))[0] == 101
    for expires in ("0", "604801", "1e3", "-5", "\u0661"):  # out of SigV4's range, or not plain digits
        tampered = with_param(signed_path(minted, "127.0.0.1"), "X-Amz-Expires", expires)
        assert upgrade(stack.wss_port, stack.ca_file, tampered) == (403, "forbidden: malformed X-Amz-Expires\n")


@pytest.mark.parametrize("name", ["X-Amz-Security-Token", "X-Amz-Signature"])
def test_a_non_ascii_token_or_signature_is_a_403_not_a_500(stack, minted, name):
    tampered = with_param(signed_path(minted, "127.0.0.1"), name, "jeton-\u00e9t\u00e9-\u2603")
    assert "%E2%98%83" in tampered  # sent percent-encoded, decoded by the front to non-ASCII text
    status, body = upgrade(stack.wss_port, stack.ca_file, tampered)
    assert status == 403 and body in ("forbidden: wrong session token\n", "forbidden: signature does not match\n")
    assert "Traceback" not in stack.log()


@pytest.mark.parametrize("origin, status", [
    ("https://evil.example", 403), ("null", 403), ("http://127.0.0.1:1", 403),
    ("own-https", 101), ("own-http", 101),
])
def test_only_the_stacks_own_origins_may_upgrade(stack, minted, origin, status):
    """A web page the user visits must not reach the local broker through their browser."""
    origin = {"own-https": f"https://127.0.0.1:{stack.wss_port}",
              "own-http": stack.endpoint.removesuffix("/iot/keys").replace("127.0.0.1", "localhost")}.get(origin, origin)
    answer = upgrade(stack.wss_port, stack.ca_file, signed_path(minted, "127.0.0.1"), f"Origin: {origin}\r\n")
    assert answer[0] == status
    if status == 403:
        assert answer[1] == "forbidden: origin not allowed\n"


def test_a_websocket_message_larger_than_2_mib_closes_the_connection(permissive_stack, fast_cli):
    """Even with no rules (where Mosquitto would take a 2 MiB PUBLISH), the front reads no WebSocket
    message over 2 MiB: AWS IoT Core's packets are at most 128 KB."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from iotnotify.local.packets import packet

    stack, keys = permissive_stack, json.loads(fast_cli.run("keys", "--json", "--no-cache").stdout)
    context = ssl.create_default_context(cafile=stack.ca_file)
    uri = f"wss://127.0.0.1:{stack.wss_port}{signed_path(keys, f'127.0.0.1:{stack.wss_port}')}"
    with connect(uri, ssl=context, subprotocols=["mqtt"], max_size=None) as websocket:
        websocket.send(packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x03big"))  # MQTT 3.1.1 CONNECT
        assert websocket.recv(timeout=5)[:1] == b"\x20"  # CONNACK
        with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - while still sending it, or at the next read
            websocket.send(packet(0x30, b"\x00\x01t" + b"x" * (2 * 1024 * 1024)))  # PUBLISH, QoS 0
            websocket.recv(timeout=5)
    # 1009, message too big; unless the front's close overtook its close frame while the client was sending
    assert closed.value.rcvd is None or closed.value.rcvd.code == 1009


def test_a_wrong_secret_is_refused(stack, minted):
    assert upgrade(stack.wss_port, stack.ca_file, signed_path({**minted, "secretKey": "wrong"}, "127.0.0.1")) == (
        403, "forbidden: signature does not match\n")


@pytest.mark.parametrize("via, said", [("mqtt", "refused the MQTT WebSocket connection"),
                                           ("https", "refused the keys (HTTP 403: forbidden: unknown access key)")])
def test_clients_with_keys_the_endpoint_never_minted_are_refused(stack, fake_endpoint, tmp_path, via, said):
    fake_endpoint.answer(body=tutorial_keys(port=stack.wss_port))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "--ca-file", stack.ca_file,
                                         "send", "--via", via, "t", "x")
    assert result.returncode == 5
    assert said in result.stderr


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_client_with_a_wrong_secret_is_refused(stack, minted, fake_endpoint, tmp_path, protocol):
    fake_endpoint.answer(body={**minted, "secretKey": "not-the-secret"})
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "--ca-file", stack.ca_file,
                                         "send", "--protocol", protocol, "test/sigv4", "x")
    assert result.returncode == 5 and "refused" in result.stderr


def test_expired_keys_and_stale_signatures_are_refused():
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    keys = {"accessKey": "ASIAEXAMPLE", "secretKey": "s", "sessionToken": "t", "region": "local"}
    path = signed_path(keys, "h", when=now)
    known = KnownKeys("s", "t", now + dt.timedelta(seconds=60))
    assert check_upgrade(path, {"Host": "h", "Connection": "Upgrade"}, lambda _k: known, now) is None
    assert check_upgrade(path, {"Host": "h", "Connection": "Upgrade"}, lambda _k: known,
                         now + dt.timedelta(seconds=61)) == "expired keys"
    long_lived = KnownKeys("s", "t", now + dt.timedelta(hours=1))
    assert check_upgrade(path, {"Host": "h", "Connection": "Upgrade"}, lambda _k: long_lived,
                         now + dt.timedelta(minutes=6)) == "signature date too far from now"
    assert check_upgrade(path, {"Host": "other", "Connection": "Upgrade"}, lambda _k: long_lived,
                         now) == "signature does not match"


def test_a_presigned_url_is_good_until_its_x_amz_expires_not_just_five_minutes():
    now = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
    keys = {"accessKey": "ASIAEXAMPLE", "secretKey": "s", "sessionToken": "t", "region": "local"}
    path = signed_path(keys, "h", when=now, expires=3600)
    known = KnownKeys("s", "t", now + dt.timedelta(hours=2))
    headers = {"Host": "h", "Connection": "Upgrade"}
    assert check_upgrade(path, headers, lambda _k: known, now + dt.timedelta(minutes=30)) is None
    assert check_upgrade(path, headers, lambda _k: known, now + dt.timedelta(minutes=61)) == "signature expired"
    assert check_upgrade(path, headers, lambda _k: known, now - dt.timedelta(minutes=6)) == (
        "signature date too far from now")  # made in the future


@pytest.mark.slow
@pytest.mark.mosquitto
def test_a_subscriber_keeps_receiving_across_the_expiry_of_20_second_keys(tmp_path):
    stack = LocalStack(StackConfig(tmp_path / "state", free_port(), free_port(), free_port(), lifetime=20,
                                   topics=("t",)))
    stack.start()
    try:
        env = {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": stack.endpoint_url, "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}
        cli = Cli(env)
        old = json.loads(cli.run("keys", "--json").stdout)
        ready = tmp_path / "ready"
        sub = subprocess.Popen([*IOTNOTIFY, "subscribe", "t", "-C", "2", "-W", "150", "--quiet", "--ready-file",
                                str(ready)], stdout=subprocess.PIPE, env=env)
        wait_for(ready.exists, 30, "subscriber ready")
        assert cli.run("send", "t", "before").returncode == 0
        expires = dt.datetime.fromisoformat(old["expiration"].replace("Z", "+00:00"))
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds() + 1))
        assert upgrade(stack.config.wss_port, str(stack.tls.ca_file), signed_path(old, "127.0.0.1")) == (
            403, "forbidden: expired keys\n")
        stack.broker.stop()  # the connection drops; the subscriber must come back with new keys
        stack.broker.start()
        wait_for(lambda: cli.run("send", "t", "after").returncode == 0 and sub.poll() is not None, 60,
                 "a message after the reconnection")
        out, _ = sub.communicate(timeout=10)
        assert sub.returncode == 0
        assert out.split(b"\n")[0] == b"before" and out.split(b"\n")[1] == b"after"
    finally:
        stack.stop()


def restarted(config: StackConfig) -> LocalStack:
    """A stack started on ports an earlier one had: a port free_port() once found free may be an
    outgoing connection's for a moment by now (ephemeral ports are shared), so try for a few seconds."""
    from iotnotify.errors import LocalStackError

    deadline = time.monotonic() + 10
    while True:
        stack = LocalStack(config)
        try:
            stack.start()
        except LocalStackError as e:
            if "in use" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        else:
            return stack


@pytest.mark.mosquitto
def test_cached_keys_a_restarted_local_stack_does_not_know_are_replaced(tmp_path):
    ports = (free_port(), free_port(), free_port())
    env = None
    for round_ in range(2):  # the second stack has not minted the keys the client cached from the first
        stack = restarted(StackConfig(tmp_path / "state", *ports, topics=("t",)))
        try:
            env = env or {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": stack.endpoint_url,
                          "IOTNOTIFY_CA_FILE": str(stack.tls.ca_file)}
            result = Cli(env).run("send", "t", f"round {round_}")
            assert result.returncode == 0, result.stderr
        finally:
            stack.stop()


@pytest.mark.slow
@pytest.mark.mosquitto
def test_a_subscriber_goes_on_under_the_new_keys_client_id_after_the_stack_restarts(tmp_path):
    """The restarted stack refuses the old keys; the new ones are for another client id: the
    subscriber goes on under an id of theirs, still subscribed, and says nothing but that."""
    ports = (free_port(), free_port(), free_port())
    first = LocalStack(StackConfig(tmp_path / "state", *ports, topics=("t",)))
    first.start()
    env = {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": first.endpoint_url, "IOTNOTIFY_CA_FILE": str(first.tls.ca_file)}
    ready = tmp_path / "ready"
    sub = subprocess.Popen([*IOTNOTIFY, "subscribe", "t", "-C", "1", "-W", "60", "--ready-file", str(ready),
                            "--reconnect-delay", "0.2,1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_for(ready.exists, 30, "subscriber ready")
    first.stop()
    second = restarted(StackConfig(tmp_path / "state", *ports, topics=("t",)))
    try:
        wait_for(lambda: Cli(env).run("send", "t", "to the new id").returncode == 0 and sub.poll() is not None, 60,
                 "the message after the restart")
        out, err = sub.communicate(timeout=10)
    finally:
        second.stop()
    assert (sub.returncode, out) == (0, b"to the new id\n")
    assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode()
    assert err.decode().startswith("iotnotify: connection lost, reconnecting")


JS = Path(__file__).resolve().parent / "js"


def tutorial_sdk(stack, keys: dict, topic: str) -> subprocess.CompletedProcess[str]:
    """Run the tutorial's JavaScript SDK (aws-iot-device-sdk, over wss) with `keys`."""
    return subprocess.run(["node", str(JS / "pubsub.js"), topic], input=json.dumps(keys), capture_output=True,
                          text=True, cwd=JS, timeout=60, env={**os.environ, "NODE_EXTRA_CA_CERTS": stack.ca_file})


@pytest.mark.node
def test_the_tutorials_javascript_sdk_is_accepted(stack, minted, topic):
    result = tutorial_sdk(stack, minted, topic)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the tutorial sdk\n"


@pytest.mark.node
def test_the_tutorials_javascript_sdk_with_a_wrong_secret_is_refused(stack, minted, topic):
    result = tutorial_sdk(stack, {**minted, "secretKey": "not-the-secret"}, topic)
    assert result.returncode == 2 and "timeout" not in result.stderr  # refused at once, not ignored


def url_client(stack, url: str, client_id: str, topic: str) -> subprocess.CompletedProcess[str]:
    """MQTT.js (a peer client) connecting with a presigned URL."""
    return subprocess.run(["node", str(JS / "url.js"), url, client_id, topic], capture_output=True, text=True, cwd=JS,
                          timeout=60, env={**os.environ, "NODE_EXTRA_CA_CERTS": stack.ca_file})


@pytest.mark.node
def test_keys_url_lets_a_peer_client_connect_with_the_same_scoped_keys(cli, stack, topic):
    keys = json.loads(cli.run("keys", "--json").stdout)
    url = cli.run("keys", "--url").stdout.strip()
    assert url.startswith(f"wss://127.0.0.1:{stack.wss_port}/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["X-Amz-Security-Token"] == keys["sessionToken"]  # appended after signing, as AWS IoT's clients do
    lifetime = (dt.datetime.fromisoformat(keys["expiration"]) - dt.datetime.now(dt.UTC)).total_seconds()
    assert abs(int(params["X-Amz-Expires"]) - lifetime) < 10  # valid until the keys expire
    result = url_client(stack, url, keys["clientId"] + "-js", topic)
    assert (result.returncode, result.stdout) == (0, "hello over the url\n"), result.stderr
    # the keys' scope holds for the URL's users too: another client id is refused
    assert url_client(stack, url, "someone-else", topic).returncode == 2


@pytest.mark.node
def test_a_tampered_url_is_refused(cli, stack, topic):
    keys = json.loads(cli.run("keys", "--json").stdout)
    url = cli.run("keys", "--url").stdout.strip()
    tampered = url.replace("X-Amz-Expires=", "X-Amz-Expires=1")
    result = url_client(stack, tampered, keys["clientId"] + "-js", topic)
    assert result.returncode == 2 and "timeout" not in result.stderr


def test_keys_url_goes_with_no_other_output_flag(cli):
    result = cli.run("keys", "--url", "--json")
    assert result.returncode == 2
    assert "--json, --export and --url cannot be used together" in result.stderr
