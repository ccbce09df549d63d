"""`iotnotify local`: starts on the given ports, reuses its certificates, reports what is wrong,
and stops without leaving a process behind."""

import os
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from iotnotify.errors import LocalStackError
from iotnotify.local.broker import find_mosquitto
from tests.helpers import SESSION_TOPICS, Cli, free_port, running_stack, start_stack, stop_stack, user_env


def children(pid: int) -> list[int]:
    """PIDs of a process's children (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_local_prints_what_it_started_and_writes_the_profile(stack):
    config = stack.cli.env["XDG_CONFIG_HOME"] + "/iotnotify/config.toml"
    text = Path(config).read_text()
    assert f'endpoint = "{stack.endpoint}"' in text
    assert f'ca_file = "{stack.ca_file}"' in text


@pytest.mark.mosquitto
def test_ctrl_c_stops_broker_and_endpoint_and_certificates_are_reused(tmp_path):
    first = start_stack(tmp_path)
    ca = Path(first.ca_file).read_bytes()
    brokers = children(first.process.pid)
    assert len(brokers) == 1
    assert stop_stack(first) == 0
    assert not os.path.exists(f"/proc/{brokers[0]}") or "zombie" in Path(f"/proc/{brokers[0]}/status").read_text().lower()
    with pytest.raises(OSError):
        urllib.request.urlopen(first.endpoint, timeout=2)
    out = first.stdout()
    assert "iotnotify local is running" in out and "--profile local send" in out
    second = start_stack(tmp_path)
    try:
        assert Path(second.ca_file).read_bytes() == ca
    finally:
        stop_stack(second)


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = Cli(user_env(tmp_path)).run("local", "--port", str(port), "--keys-port", str(free_port()),
                                             "--mqtt-port", str(free_port()), "--ws-port", str(free_port()), timeout=30)
    assert result.returncode == 8
    assert result.stderr.strip() == f"iotnotify: error: port {port} (MQTT over WebSocket) is in use: choose another with --port"


def test_keys_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = Cli(user_env(tmp_path)).run("local", "--port", str(free_port()), "--keys-port", str(port),
                                             "--mqtt-port", str(free_port()), "--ws-port", str(free_port()), timeout=30)
    assert result.returncode == 8
    assert "(keys endpoint) is in use: choose another with --keys-port" in result.stderr


def test_missing_mosquitto_says_how_to_install_it():
    with pytest.raises(LocalStackError, match="mosquitto was not found on PATH: install it with: sudo apt-get install -y mosquitto"):
        find_mosquitto(path="/nonexistent", fallback="")


def test_local_endpoint_answers_cors_preflight_for_its_own_origins_and_404(stack):
    own = stack.endpoint.removesuffix("/iot/keys")  # a page served by the stack itself
    for origin in (own, own.replace("127.0.0.1", "localhost")):
        request = urllib.request.Request(stack.endpoint, method="OPTIONS", headers={"Origin": origin})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert response.headers["Vary"] == "Origin"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(stack.endpoint.replace("/iot/keys", "/other"), timeout=5)
    with info.value:
        assert info.value.code == 404


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(address)
    return found


def test_every_listener_is_on_loopback_only(stack):
    loopback_v4 = "0100007F"  # 127.0.0.1, little-endian hex
    for port in (stack.wss_port, stack.keys_port, stack.mqtt_port):
        assert listening_addresses(port) == {loopback_v4}, port


def tcp_connections(port: int) -> int:
    """Established TCP connections with an end on 127.0.0.1:`port` (/proc/net/tcp)."""
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if state == "01" and port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)):
                count += 1
    return count


def unix_connections(path: Path) -> int:
    """Connected Unix sockets bound to `path` (/proc/net/unix): a listener's end of each connection."""
    with open("/proc/net/unix") as f:
        return sum(1 for line in f.readlines()[1:]
                   if line.split()[-1] == str(path) and line.split()[5] == "03")  # 03: connected


def test_the_front_reaches_mosquitto_over_a_unix_socket_of_its_own(stack, cli, tmp_path, topic):
    sock = stack.state / "iotnotify" / "local" / "broker" / "mqtt.sock"
    assert stat.S_ISSOCK(sock.lstat().st_mode)
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700  # no other user reaches the anonymous broker
    before = unix_connections(sock)
    subscriber = cli.subscriber(tmp_path, topic, "-C", "1")
    try:
        assert unix_connections(sock) == before + 1
        assert tcp_connections(stack.mqtt_port) == 0  # the plain listener is only for tools
        assert cli.run("send", topic, "through the socket").returncode == 0
        out, _ = subscriber.communicate(timeout=20)
        assert out == b"through the socket\n"
    finally:
        subscriber.kill()


def test_a_broker_folder_too_deep_for_a_socket_path_relays_over_tcp(tmp_path):
    from iotnotify.local.broker import front_socket, render_config

    assert front_socket(tmp_path) == tmp_path / "mqtt.sock"
    assert f"listener 0 {tmp_path / 'mqtt.sock'}\nprotocol mqtt\n" in render_config(1883, "", tmp_path / "mqtt.sock")
    deep = tmp_path / ("d" * 120)
    assert front_socket(deep) is None  # a socket's path has room for 107 bytes
    assert "listener 0" not in render_config(1883)


@pytest.mark.mosquitto
def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path):
    from iotnotify.local.broker import Broker

    first = Broker(tmp_path / "broker", free_port())
    assert first.unix_socket is not None
    first.start()
    try:
        second = Broker(tmp_path / "broker", free_port())
        with pytest.raises(LocalStackError, match="another local stack uses"):
            second.start()
        assert second.process is None
    finally:
        first.stop()
    assert not first.unix_socket.exists()  # stop removes it
    with socket.socket(socket.AF_UNIX) as left:  # as a broker killed with SIGKILL leaves it
        left.bind(str(first.unix_socket))
    third = Broker(tmp_path / "broker", free_port())
    third.start()
    try:
        assert stat.S_ISSOCK(first.unix_socket.lstat().st_mode)
    finally:
        third.stop()


def test_wss_front_answers_404_off_the_mqtt_path(stack):
    import ssl

    context = ssl.create_default_context(cafile=stack.ca_file)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"https://127.0.0.1:{stack.wss_port}/other", context=context, timeout=5)
    with info.value:
        assert info.value.code == 404


def test_local_endpoint_answers_with_the_aws_handler(stack):
    import json

    with urllib.request.urlopen(stack.endpoint, timeout=5) as response:
        body = json.load(response)
    assert body["topics"] == SESSION_TOPICS.split(",") and body["clientId"].startswith("iotnotify-")
    assert body["awsRules"] is True  # the client keeps AWS IoT Core's limits and pacing on
    assert body["port"] == stack.wss_port and body["region"] == "local"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(stack.endpoint + "?topic=a/*", timeout=5)
    with info.value:
        assert info.value.code == 400
        assert "cannot go into a policy" in json.load(info.value)["message"]


@pytest.mark.parametrize("topics, bad", [("ok/topic,a*", "'*'; * only as the last level, PREFIX/*"),
                                         ("ok/*,a/*/b", "'*'; * only as the last level, PREFIX/*"),
                                         ("a/#", "'#'"), ("${iot:ClientId}", "'$' '{' '}'")])
def test_local_refuses_topics_that_could_widen_a_policy(tmp_path, topics, bad):
    result = Cli(user_env(tmp_path)).run("local", "--topics", topics, timeout=30)
    assert result.returncode == 2
    topic = topics.split(",")[-1]
    assert result.stderr.strip() == (f"iotnotify: error: --topics or --private-topic-prefix: topic {topic!r} "
                                     f"cannot go into a policy (not allowed: {bad})")


def test_broker_allows_100_messages_in_flight_like_aws_iot():
    from iotnotify.local.broker import render_config

    assert "max_inflight_messages 100\n" in render_config(1883)


def test_broker_ends_persistent_sessions_after_whole_hours_when_told():
    """The backstop of the gateway's own expiry of MQTT 3.1.1 sessions (Mosquitto counts in hours)."""
    from iotnotify.local.broker import render_config

    assert "persistent_client_expiration 2h\n" in render_config(1883, session_hours=2)
    assert "persistent_client_expiration" not in render_config(1883)


def test_a_persistent_broker_saves_its_state_in_the_folder_given(tmp_path):
    from iotnotify.local.broker import render_config

    config = render_config(1883, persistence=tmp_path)
    assert f"persistence true\npersistence_location {tmp_path}/\n" in config and "persistence false" not in config
    assert "persistence false\n" in render_config(1883)  # permissive (benchmarks): nothing saved


def test_broker_sends_small_messages_at_once_and_takes_extra_listeners():
    from iotnotify.local.broker import render_config

    config = render_config(1883, "listener 8883 127.0.0.1\n")
    assert "set_tcp_nodelay true\n" in config  # no Nagle delay on a PUBACK (bench/README.md: latency)
    assert config.endswith("listener 1883 127.0.0.1\nprotocol mqtt\nlistener 8883 127.0.0.1\n")


@pytest.mark.parametrize("content, message", [
    (b"not json", "not JSON"),
    (b'{"Version": "2012-10-17"}', "not an IAM policy (no Statement)"),
])
def test_a_role_policy_that_is_not_one_is_a_usage_error(tmp_path, content, message):
    policy = tmp_path / "role.json"
    policy.write_bytes(content)
    result = Cli(user_env(tmp_path)).run("local", "--role-policy", str(policy), "--port", str(free_port()),
                                         "--keys-port", str(free_port()), "--mqtt-port", str(free_port()), "--ws-port", str(free_port()), timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(f"iotnotify: error: --role-policy {policy}: {message}")


def get_keys(url: str, **headers: str) -> tuple[int, dict, dict]:
    """GET the keys endpoint with these headers: status, JSON body, response headers."""
    import json

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.load(e), dict(e.headers)


def test_a_web_page_from_another_origin_gets_no_keys(stack):
    """Any site the user visits could otherwise fetch local keys from their browser."""
    status, body, headers = get_keys(stack.endpoint, Origin="https://evil.example")
    assert (status, body) == (403, {"message": "this origin may not get keys"})
    assert "Access-Control-Allow-Origin" not in headers
    own = stack.endpoint.removesuffix("/iot/keys")
    status, body, headers = get_keys(stack.endpoint, Origin=own)
    assert status == 200 and body["accessKey"].startswith("ASIA")
    assert headers["Access-Control-Allow-Origin"] == own


def test_a_site_name_resolved_to_loopback_gets_no_keys(stack):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 is same-origin
    with the endpoint, so its browser sends no Origin; the Host header still names the site."""
    status, body, _ = get_keys(stack.endpoint, Host=f"evil.example:{stack.keys_port}")
    assert (status, body) == (403, {"message": "use the keys endpoint by its loopback address"})
    assert get_keys(stack.endpoint, Host=f"localhost:{stack.keys_port}")[0] == 200


@pytest.mark.mosquitto
def test_cors_origin_lets_one_more_page_in(tmp_path):
    with running_stack(tmp_path, "--cors-origin", "https://app.example/") as stack:
        status, _, headers = get_keys(stack.endpoint, Origin="https://app.example")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert get_keys(stack.endpoint, Origin="https://other.example")[0] == 403
        assert "browsers pages from the stack's own origins and https://app.example may get keys" in stack.stdout()


def test_minted_keys_held_in_memory_are_bounded():
    from iotnotify.local.keys_server import LocalIssuer

    issuer = LocalIssuer("127.0.0.1", 1, limit=100)
    first = issuer.issue("c", {}, 3600)
    last = [issuer.issue("c", {}, 3600) for _ in range(1000)][-1]
    assert len(issuer._minted) == 100
    assert issuer.lookup(first.access_key) is None and issuer.lookup(last.access_key) is not None


@pytest.mark.parametrize("folder, how", [("tls", "other-writable"), ("tls", "link"), ("broker", "other-writable")])
def test_a_state_folder_others_could_write_is_refused(tmp_path, folder, how):
    """Someone else's CA in the TLS folder would be trusted by every client of the `local` profile;
    someone else's mosquitto.conf would be run, and links there followed."""
    state = tmp_path / "xdg_state_home" / "iotnotify" / "local"
    state.mkdir(parents=True)
    if how == "link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        os.symlink(tmp_path / "elsewhere", state / folder)
    else:
        (state / folder).mkdir(mode=0o700)
        os.chmod(state / folder, 0o777)
    result = Cli(user_env(tmp_path)).run("local", "--port", str(free_port()), "--keys-port", str(free_port()),
                                         "--mqtt-port", str(free_port()), "--ws-port", str(free_port()), timeout=30)
    assert result.returncode == 8
    why = "is a symbolic link" if how == "link" else "is writable by others (mode 777)"
    assert result.stderr == (f"iotnotify: error: folder {state / folder} {why}: remove it, or use another state "
                             "folder (XDG_STATE_HOME)\n")
    assert os.listdir(tmp_path / "elsewhere" if how == "link" else state / folder) == []


def test_the_keys_endpoint_serves_a_bounded_number_at_once_and_queues_the_rest(tmp_path):
    """At most MAX_HANDLERS connections are served at once (a thread each); the others wait in a
    listen queue of BACKLOG that the kernel completes at once: 50 browsers asking together must not
    lose SYNs (retried a second later) behind socketserver's queue of 5, nor idle connections grow
    threads without bound. Served in turn once the idle ones go."""
    import threading
    import urllib.request

    from iotnotify.local.keys_server import BACKLOG, MAX_HANDLERS, KeysServer, LocalIssuer
    from iotnotify.server.config import EndpointConfig

    server = KeysServer(0, EndpointConfig(topics=("t",)), LocalIssuer("127.0.0.1", 1))
    server.start()
    port = server.httpd.server_address[1]
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_HANDLERS)]  # they send nothing
    try:
        waiting = [socket.create_connection(("127.0.0.1", port), timeout=0.5) for _ in range(BACKLOG // 2)]
        assert threading.active_count() - before <= MAX_HANDLERS
        for sock in waiting:
            sock.close()
    finally:
        for sock in idle:
            sock.close()
    with urllib.request.urlopen(server.url, timeout=20) as response:  # served once slots are free
        assert response.status == 200
    server.stop()
