"""`iotnotify local` plays by AWS IoT Core's rules, and the client is held to them: the keys' policy
(connect, publish, retained publish, subscribe, receive), AWS's limits and its throttle, as real
clients (iotnotify, awscrt without AWS's flow control, the tutorial's JavaScript SDK) meet them."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from iotnotify.errors import DeliveryError
from iotnotify.keys import KeySource, parse_keys
from iotnotify.mqtt import ConnectOptions, open_session
from tests.helpers import IOTNOTIFY, Cli, mosquitto_subscriber, running_stack, user_of, wait_for

ARN = "arn:aws:iot:local:000000000000"
JS = Path(__file__).resolve().parent / "js"


def finish(proc, timeout=30):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


# ---- the keys' policy ----------------------------------------------------------------------------

def scoped(cli: Cli, stack, topic: str, tmp_path) -> Cli:
    """The CLI with keys narrowed to one topic (`?topic=`), and a cache of its own."""
    return Cli({**cli.env, "IOTNOTIFY_ENDPOINT": f"{stack.endpoint}?topic={topic}",
                "XDG_CACHE_HOME": str(tmp_path / "scoped-cache")})


def unlisted(keys: dict, fake_endpoint) -> list[str]:
    """Flags for keys that do not list their topics (as the tutorial's endpoint): only the broker
    can refuse, so these show the stack's own enforcement, not the client's early check."""
    fake_endpoint.answer(body={k: v for k, v in keys.items() if k not in ("topics", "privateTopic")})
    return ["--endpoint", fake_endpoint.url]


def test_scoped_keys_are_refused_elsewhere_before_anything_is_sent(cli, stack, topic, tmp_path):
    narrow = scoped(cli, stack, f"{topic}/mine", tmp_path)
    assert narrow.run("send", f"{topic}/mine", "ok").returncode == 0
    result = narrow.run("send", f"{topic}/other", "no")
    assert result.returncode == 10
    assert result.stderr == (f"iotnotify: error: not allowed: the keys may not publish to '{topic}/other' "
                             f"(the keys allow topic {topic}/mine)\n")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_broker_refuses_a_publish_outside_the_keys_policy(cli, stack, topic, fake_endpoint, protocol, tmp_path):
    keys = json.loads(scoped(cli, stack, f"{topic}/mine", tmp_path).run("keys", "--json").stdout)
    flags = [*unlisted(keys, fake_endpoint), "--no-cache"]
    allowed = cli.run(*flags, "send", "--protocol", protocol, f"{topic}/mine", "ok")
    assert allowed.returncode == 0, allowed.stderr
    started = time.monotonic()
    result = cli.run(*flags, "send", "--protocol", protocol, f"{topic}/other", "no", "--timeout", "20")
    assert result.returncode == 10 and result.stderr.count("\n") == 1
    if protocol == "5":  # PUBACK 0x87
        assert "1 of 1 message was not delivered (1 refused by the broker: 0x87 not authorized to publish to" \
            in result.stderr
    else:  # AWS closes the connection: said as well as MQTT 3.1.1 allows, and not retried forever
        assert "the broker closed the connection after the publish (MQTT 3.1.1 cannot say why" in result.stderr
        assert time.monotonic() - started < 10
    assert f"iot:Publish to '{topic}/other' not allowed" in stack.log()


def test_a_wildcard_subscription_is_refused_with_exact_topic_keys(cli, stack, topic, fake_endpoint, tmp_path):
    narrow = scoped(cli, stack, f"{topic}/exact", tmp_path)
    result = narrow.run("subscribe", f"{topic}/#")
    assert result.returncode == 10
    assert f"the keys may not subscribe to '{topic}/#' (the keys allow topic {topic}/exact)" in result.stderr
    flags = [*unlisted(json.loads(narrow.run("keys", "--json").stdout), fake_endpoint), "--no-cache"]
    for protocol, said in (("5", "0x87 not authorized to subscribe"), ("3.1.1", "MQTT 3.1.1 cannot say why")):
        refused = cli.run(*flags, "subscribe", f"{topic}/#", "--protocol", protocol, "-W", "5")
        assert refused.returncode == 10 and "broker refused the subscription" in refused.stderr, refused.stderr
        assert said in refused.stderr


def test_partial_goes_on_with_the_granted_filters(cli, stack, tmp_path, topic):
    narrow = scoped(cli, stack, f"{topic}/exact", tmp_path)
    ready = tmp_path / "ready"
    sub = subprocess.Popen([*IOTNOTIFY, "subscribe", f"{topic}/exact", f"{topic}/#", "--partial", "-C", "1", "-W", "20",
                            "--ready-file", str(ready)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=narrow.env)
    wait_for(lambda: ready.exists() or sub.poll() is not None, 20, "partial subscriber ready")
    assert narrow.run("send", f"{topic}/exact", "granted").returncode == 0
    code, out, err = finish(sub)
    assert (code, out) == (0, "granted\n")
    assert f"iotnotify: warning: not allowed: the keys may not subscribe to '{topic}/#'" in err


@pytest.fixture(scope="module")
def ruled_stack(tmp_path_factory):
    """A stack whose role policy (--role-policy) denies some of what the keys' session policy allows:
    receiving below test/secret/, retained messages below test/noretain/, publishing below test/nopublish/."""
    folder = tmp_path_factory.mktemp("ruled")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:*", "Resource": f"{ARN}:*"},
        {"Effect": "Deny", "Action": "iot:Receive", "Resource": f"{ARN}:topic/test/secret/*"},
        {"Effect": "Deny", "Action": "iot:RetainPublish", "Resource": f"{ARN}:topic/test/noretain/*"},
        {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{ARN}:topic/test/nopublish/*"},
    ]}
    (folder / "role.json").write_text(json.dumps(policy))
    with running_stack(folder, "--topics", "test/*", "--role-policy", str(folder / "role.json"),
                       "--private-topic-prefix", "users") as running:
        yield running


@pytest.fixture
def ruled(ruled_stack) -> Cli:
    return user_of(ruled_stack)


def test_a_private_topic_is_for_its_own_keys_only(ruled, ruled_stack, tmp_path):
    private = json.loads(ruled.run("keys", "--json").stdout)["privateTopic"]
    sub = ruled.subscriber(tmp_path, private, "-C", "1", "-W", "20")
    # a backend with its own credentials notifies that one user (here on Mosquitto's plain listener)
    subprocess.run(["mosquitto_pub", "-p", str(ruled_stack.mqtt_port), "-h", "127.0.0.1", "-q", "1", "-t", private,
                    "-m", "for you only"], check=True, timeout=10)
    assert finish(sub)[:2] == (0, "for you only\n")
    assert ruled.run("send", private, "x").returncode == 10  # no keys may publish to it
    others = Cli({**ruled.env, "XDG_CACHE_HOME": str(tmp_path / "other-keys")})  # keys for another client id
    refused = others.run("subscribe", private)
    assert refused.returncode == 10 and f"may not subscribe to '{private}'" in refused.stderr


def test_messages_the_keys_may_not_receive_are_not_delivered(ruled, ruled_stack, tmp_path):
    sub = ruled.subscriber(tmp_path, "test/#", "-v", "-C", "1", "-W", "20")
    assert ruled.run("send", "test/secret/plans", "hidden").returncode == 0  # publishing there is allowed
    assert ruled.run("send", "test/open/news", "shown").returncode == 0
    assert finish(sub)[1] == "test/open/news shown\n"
    assert "message on 'test/secret/plans' not delivered: iot:Receive not allowed" in ruled_stack.log()


def test_retained_publish_is_allowed_where_the_policy_grants_retain_publish(ruled, tmp_path):
    assert ruled.run("send", "--retain", "test/config/app", "v2").returncode == 0
    result = ruled.run("subscribe", "test/config/app", "--retained-only")
    assert (result.returncode, result.stdout) == (0, "v2\n")
    ruled.run("send", "--retain", "test/config/app", "-s", input=b"")


def test_retained_publish_is_refused_without_retain_publish(ruled):
    result = ruled.run("send", "--retain", "test/noretain/app", "v2")
    assert result.returncode == 10
    assert "1 refused by the broker: 0x87 not authorized to publish to 'test/noretain/app'" in result.stderr
    assert ruled.run("send", "test/noretain/app", "not retained").returncode == 0


def test_send_lines_counts_refusals_and_goes_on_while_the_connection_stays(ruled, tmp_path):
    failed = tmp_path / "failed.txt"
    private = json.loads(ruled.run("keys", "--json").stdout)["privateTopic"]
    result = ruled.run("send", "-l", "test/nopublish/x", "--failed", str(failed), input="a\nb\nc\n")
    assert result.returncode == 10
    assert result.stderr == ("iotnotify: error: 3 of 3 messages were not delivered (3 refused by the broker: 0x87 not "
                             "authorized to publish to 'test/nopublish/x' (the keys allow topic test/*; and subscribing "
                             f"to {private})); saved to {failed}\n")
    assert failed.read_text() == "a\nb\nc\n"


@pytest.mark.parametrize("protocol, qos", [("5", "0"), ("3.1.1", "1")])
def test_send_lines_stops_where_the_refusal_closes_the_connection(ruled, tmp_path, protocol, qos):
    """MQTT 5 QoS 0 (DISCONNECT 0x87) and MQTT 3.1.1 (closed): the rest of the input is left unread."""
    sender = subprocess.Popen([*IOTNOTIFY, "send", "-l", "test/nopublish/x", "--protocol", protocol, "--qos", qos],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=ruled.env)
    sender.stdin.write(b"first\n")
    sender.stdin.flush()
    time.sleep(2)  # refused by now; the next line finds the connection ended
    try:
        sender.stdin.write(b"second\nthird\n")
    except BrokenPipeError:
        pass
    err = sender.communicate(timeout=30)[1].decode()
    assert sender.returncode == 10, err
    assert "input not read past message" in err and err.count("\n") == 1


@pytest.mark.parametrize("protocol, qos", [("5", "1"), ("3.1.1", "1")])
def test_a_single_refused_message_says_nothing_of_input_left_unread(ruled, protocol, qos):
    """One message given on the command line: no input is left, so none is said to be unread. (At
    QoS 0 a single message may be written and the connection closed before the broker's refusal
    comes back: at most once, as on AWS; QoS 1 waits for the PUBACK or the close.)"""
    done = Cli(ruled.env).run("send", "test/nopublish/x", "hi", "--protocol", protocol, "--qos", qos,
                              "--via", "mqtt", "--no-agent")
    assert done.returncode == 10, done.stderr
    assert "input not read" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


# ---- one connection per client id ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_client_taken_over_says_so_and_exits(cli, tmp_path, topic, protocol):
    owner = json.loads(cli.run("keys", "--json").stdout)["clientId"]
    same = ["--client-id", f"{owner}-same", "--protocol", protocol, "--reconnect-delay", "0.5,1"]
    first = cli.subscriber(tmp_path, topic, *same, "-W", "60")
    second = cli.subscriber(tmp_path, topic, *same, "-C", "1", "-W", "60")
    code, _, err = finish(first, 60)
    assert code == 5 and err.splitlines()[-1].startswith("iotnotify: error: ")
    if protocol == "5":
        assert f"another client connected as '{owner}-same' and took over this connection" in err
    else:
        assert "closed the connection 3 times in a row soon after it was made" in err
    assert second.poll() is None  # the newer one stays: it still receives
    assert cli.run("send", topic, "to the newer").returncode == 0
    assert finish(second)[:2] == (0, "to the newer\n")


def settled(items: list, quiet: float = 1.0):
    """A condition for wait_for: `items` has not grown for `quiet` seconds."""
    seen = {"count": -1, "since": time.monotonic()}

    def check() -> bool:
        if len(items) != seen["count"]:
            seen["count"], seen["since"] = len(items), time.monotonic()
        return time.monotonic() - seen["since"] >= quiet

    return check


# ---- AWS's limits ----------------------------------------------------------------------------------

def raw_connection(keys: dict, ca_file: str, protocol: str = "5", **options):
    """A real awscrt client with AWS IoT Core's validation and flow control off (as a client that
    knows nothing of AWS's rules): keys without "awsRules", so nothing is batched or paced."""
    plain = parse_keys({k: v for k, v in keys.items() if k not in ("awsRules", "topics")})
    return open_session(KeySource("raw", lambda: plain), ConnectOptions(protocol, ca_file=ca_file, **options))


def test_nine_filters_in_one_subscribe_end_the_connection(cli, stack):
    keys = json.loads(cli.run("keys", "--json").stdout)
    with raw_connection(keys, stack.ca_file) as connection, pytest.raises(DeliveryError):
        connection.subscribe([f"test/nine/{i}" for i in range(9)], 1, timeout=5)
    assert "9 filters in one SUBSCRIBE (AWS IoT Core takes 8): connection closed (reason 0x97)" in stack.log()


def test_the_51st_subscription_is_refused_and_the_client_checks_it_first(cli, stack):
    keys = json.loads(cli.run("keys", "--json").stdout)
    filters = [f"test/many/{i}" for i in range(56)]
    with raw_connection(keys, stack.ca_file) as connection:
        codes = [code for i in range(0, 56, 8) for code in connection.subscribe(filters[i:i + 8], 1)]
    assert codes == [1] * 50 + [0x97] * 6
    result = cli.run("subscribe", *filters[:51])
    assert result.returncode == 2
    assert result.stderr == ("iotnotify: error: 51 filters, but AWS IoT Core allows at most 50 subscriptions per "
                             "connection\n")


@pytest.mark.parametrize("asked, used", [(1500, 1200), (10, 30)])
def test_keep_alive_outside_30_to_1200_s_is_set_to_the_nearest(cli, stack, asked, used):
    keys = json.loads(cli.run("keys", "--json").stdout)
    with raw_connection(keys, stack.ca_file, keep_alive=asked) as connection:
        assert connection.transport.negotiated.server_keep_alive_sec == used


# ---- AWS's throttle: 100 publishes a second per connection --------------------------------------

def count_received(cli, tmp_path, topic: str, expected: int):
    return cli.subscriber(tmp_path, topic, "-C", str(expected), "-W", "90", "--quiet")


@pytest.mark.slow
@pytest.mark.parametrize("connections, lines", [(1, 250), (4, 1000)])
def test_send_stays_under_100_publishes_a_second_per_connection(cli, stack, tmp_path, topic, connections, lines):
    """Counted where the messages reach Mosquitto (its plain listener): 4 connections bring 400 a
    second, which AWS would not deliver to one subscriber (the outbound throttle, below)."""
    sub = mosquitto_subscriber(stack.mqtt_port, topic, "-C", str(lines), "-W", "90")
    payload = "".join(f"{i}\n" for i in range(lines))
    log_before = len(stack.log())
    started = time.monotonic()
    result = cli.run("send", "-l", topic, "--connections", str(connections), input=payload, timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out, _ = sub.communicate(timeout=90)
    received = [line for line in out.decode().splitlines() if line.isdigit()]  # -d's trace lines are not
    assert sorted(map(int, received)) == list(range(lines))  # nothing lost
    assert "throttled" not in stack.log()[log_before:]  # nothing refused for rate
    # never faster than AWS allows (a burst of 100 per connection, then 100 a second)
    assert elapsed >= (lines - 100 * connections) / (100 * connections)


@pytest.mark.slow
def test_a_subscriber_gets_at_most_100_messages_a_second_and_says_so(cli, stack, tmp_path, topic):
    """Two connections at 97 a second each into one subscriber: AWS delivers 100 a second to it and
    discards the rest without a word (the stack logs them); subscribe sees the rate and warns, once."""
    sub = cli.subscriber(tmp_path, topic, "-q", "1", "-W", "12")
    log_before = len(stack.log())
    lines = "".join(f"{i}\n" for i in range(1000))
    assert cli.run("send", "-l", topic, "--connections", "2", input=lines, timeout=60).returncode == 0  # ~194/s
    out, err = sub.communicate(timeout=30)
    received = len(out.splitlines())
    assert 300 <= received <= 800  # of 1000: ~100 a second for the 5 s of the flood (and a burst of 100)
    assert err.decode().count("messages arrive at AWS IoT Core's limit of 100 a second") == 1, err
    assert "discarded (outbound throttle)" in stack.log()[log_before:]


@pytest.mark.slow
def test_a_client_that_ignores_the_throttle_loses_what_is_over_it(cli, stack):
    keys = json.loads(cli.run("keys", "--json").stdout)
    acked = []
    with raw_connection(keys, stack.ca_file) as connection:
        for i in range(300):  # as fast as awscrt goes: far over 100 a second
            connection.publish("test/flood", b"%d" % i, 1, False, acked.append)
        wait_for(settled(acked), 15, "the acknowledgements to stop coming")
    assert 100 <= sum(outcome.acked for outcome in acked) < 200  # the first hundred (and what the rate refilled), no more
    wait_for(lambda: "publishes over 100/s discarded (throttled)" in stack.log(), 10, "the throttling logged")


# ---- the tutorial's JavaScript SDK -----------------------------------------------------------------

def tutorial_sdk(stack, keys: dict, *args: str) -> str:
    result = subprocess.run(["node", str(JS / "rules.js"), *args], input=json.dumps(keys), capture_output=True,
                            text=True, cwd=JS, timeout=60, env={**os.environ, "NODE_EXTRA_CA_CERTS": stack.ca_file})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.node
def test_the_tutorials_sdk_is_allowed_where_its_keys_allow_and_refused_where_not(cli, stack, topic, tmp_path):
    keys = json.loads(scoped(cli, stack, f"{topic}/js", tmp_path).run("keys", "--json").stdout)
    assert tutorial_sdk(stack, keys, "subscribe", f"{topic}/js", f"{topic}/#") == "1 128"  # SUBACK 0x80
    assert tutorial_sdk(stack, keys, "publish", f"{topic}/js") == "acknowledged"
    assert tutorial_sdk(stack, keys, "publish", f"{topic}/elsewhere") == "closed"  # as AWS: MQTT 3.1.1, closed
    assert tutorial_sdk(stack, keys, "subscribe", *(f"{topic}/js" for _ in range(9))) == "closed"  # over 8 filters


# ---- --permissive --------------------------------------------------------------------------------

def test_permissive_mode_checks_signatures_only(permissive_stack):
    """For benchmarks and other tools: no policy, limits or throttle, and keys that say so."""
    stack = permissive_stack
    assert "rules    permissive: signatures checked; no policy, limits or throttle" in stack.stdout()
    cli = user_of(stack)
    keys = json.loads(cli.run("keys", "--json").stdout)
    assert "awsRules" not in keys
    result = cli.run("send", "anywhere/at/all", "x", "--client-id", "any-id")
    assert result.returncode == 0, result.stderr
    with raw_connection(keys, stack.ca_file) as connection:
        assert connection.subscribe([f"anywhere/{i}" for i in range(9)], 1) == [1] * 9
        acked = []
        for i in range(300):
            connection.publish("anywhere/flood", b"%d" % i, 1, False, acked.append)
        wait_for(lambda: len(acked) == 300, 20, "every acknowledgement")
    assert sum(outcome.acked for outcome in acked) == 300
    assert stack.log() == ""
