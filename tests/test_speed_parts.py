"""The parts that make sending and receiving fast, each checked for what it does (the speed itself
is measured by bench/, not here): TCP_NODELAY on the client's socket, the Python thread state kept
on awscrt's I/O thread, and `send` keeping at most WINDOW messages unacknowledged."""

import socket
import subprocess
import threading

import pytest

from iotnotify.keys import endpoint_source
from iotnotify.mqtt import ConnectOptions, open_connection
from iotnotify.mqtt.nodelay import set_nodelay
from iotnotify.send import WINDOW
from tests.helpers import IOTNOTIFY, imports_of


def _nodelay_of_sockets_to(port: int) -> list[int]:
    import os

    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.family == socket.AF_INET and sock.getpeername()[1] == port:
                found.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        except OSError:
            pass
        finally:
            sock.close()
    return found


def test_set_nodelay_sets_it_on_the_sockets_to_that_port_only():
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_server(("127.0.0.1", 0)) as other:
        port, other_port = server.getsockname()[1], other.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as a, socket.create_connection(("127.0.0.1", other_port)) as b:
            assert set_nodelay(port) == 1
            assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert b.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


def test_the_clients_socket_to_the_broker_has_nodelay(stack):
    connection = open_connection(endpoint_source(stack.endpoint, 5), ConnectOptions(ca_file=stack.ca_file))
    try:
        assert _nodelay_of_sockets_to(connection.keys.port) and all(_nodelay_of_sockets_to(connection.keys.port))
    finally:
        connection.disconnect()


@pytest.mark.slow
def test_callbacks_on_the_io_thread_keep_their_thread_state(stack):
    """Without threadstate.keep(), CPython makes a new thread state for every callback from awscrt's
    thread, so a threading.local set in one callback is gone in the next."""
    local, seen, done = threading.local(), [], threading.Event()

    def on_done(_ok: bool) -> None:
        local.count = getattr(local, "count", 0) + 1
        seen.append(local.count)
        if len(seen) == 300:
            done.set()

    connection = open_connection(endpoint_source(stack.endpoint, 5), ConnectOptions(ca_file=stack.ca_file))
    try:
        for i in range(300):
            connection.publish("test/threadstate", b"%d" % i, 1, False, on_done)
        assert done.wait(20)
    finally:
        connection.disconnect()
    assert max(seen) > 200  # kept from the 64th callback on (threadstate.WARM_UP)


def test_send_of_many_windows_arrives_whole_and_in_order(fast_cli, tmp_path):
    """Reading pauses while WINDOW messages wait (test_reconnect shows where it stops); with the
    broker answering, everything arrives, in order. (A permissive stack: at AWS's 100 messages a
    second acknowledgements come back faster than messages go, and the window never fills.)"""
    cli = fast_cli
    count = WINDOW * 5
    sub = cli.subscriber(tmp_path, "test/window", "-C", str(count), "-W", "60")
    lines = b"".join(b"%d\n" % i for i in range(count))
    result = subprocess.run([*IOTNOTIFY, "send", "-l", "test/window"], input=lines, env=cli.env, capture_output=True)
    assert result.returncode == 0, result.stderr
    out, _ = sub.communicate(timeout=60)
    assert out == lines


def test_awscrts_binding_is_called_directly_only_for_the_versions_read():
    from iotnotify.mqtt.v5 import _direct_publish_fits

    assert [_direct_publish_fits(v) for v in ("0.19.9", "0.20.0", "0.36.1", "0.37.0", "1.0.0", "dev")] == [
        False, True, True, False, False, False]


def test_a_cold_send_reads_no_package_metadata(cli, topic):
    """awsiotsdk's metrics (its version in CONNECT's username) import importlib.metadata and read
    the package's metadata on every connection: off, and a send with cached keys imports neither."""
    assert cli.run("keys").returncode == 0  # cached: fetching them would import http.client (and email)
    imported = imports_of(cli.env, "send", "--no-agent", "--via", "mqtt", topic, "hi")
    assert "awscrt.mqtt5" in imported
    assert not {"importlib.metadata", "email"} & imported


def test_received_messages_skip_awscrts_packet_objects(stack, monkeypatch):
    """receive.py's lean core hands each message over without a PublishPacket or a
    PublishReceivedData (awscrt's _on_publish builds both): none is made for 50 messages, and each
    arrives whole, its properties too. Fails if the installed awscrt's _on_publish is not the one
    receive.py read (LEAN off)."""
    from awscrt import mqtt5

    from iotnotify.mqtt import receive
    from iotnotify.properties import Properties

    made = []
    monkeypatch.setattr(mqtt5, "PublishReceivedData", lambda *a, **k: made.append(1))  # awscrt's path would call it
    assert receive.LEAN
    got, done = [], threading.Event()

    def on_message(message) -> None:  # type: ignore[no-untyped-def]
        got.append(message)
        if len(got) == 50:
            done.set()

    options = ConnectOptions(ca_file=stack.ca_file)
    connection = open_connection(endpoint_source(stack.endpoint, 5), options, on_message)
    try:
        assert mqtt5._ClientCore.__name__ == "_ClientCore"  # swapped only while the client was built
        assert connection.subscribe(["test/lean"], 1) == [1]
        props = Properties(user_properties=(("k", "v"),), content_type="text/plain", correlation_data=b"\x00\x01",
                           message_expiry=60, payload_format="utf8", response_topic="test/lean/reply")
        for i in range(49):
            connection.publish("test/lean", b"%d" % i, 1, False, lambda _code: None)
        connection.publish("test/lean", b"last", 0, False, lambda _code: None, props)
        assert done.wait(20)
    finally:
        connection.disconnect()
    assert not made
    assert [m.payload for m in got[:49]] == [b"%d" % i for i in range(49)]
    assert (got[-1].payload, got[-1].qos, got[-1].retain) == (b"last", 0, False)
    assert got[-1].properties is not None
    assert got[-1].properties.user_properties == (("k", "v"),)
    assert (got[-1].properties.content_type, got[-1].properties.correlation_data) == ("text/plain", b"\x00\x01")
    assert (got[-1].properties.payload_format, got[-1].properties.response_topic) == ("utf8", "test/lean/reply")
    assert got[-1].properties.message_expiry in (59, 60)
    assert got[0].properties is None


def test_lean_receive_is_only_for_the_signatures_read():
    from iotnotify.mqtt.receive import KNOWN, _fits

    def make(names: tuple[str, ...]):  # type: ignore[no-untyped-def]
        namespace: dict = {}
        exec(f"def f({', '.join(names)}): pass", namespace)  # noqa: S102 - a signature to test, nothing else
        return namespace["f"]

    assert _fits(make(KNOWN))
    assert _fits(make((*KNOWN, "puback_control_id")))
    assert not _fits(make((*KNOWN, "puback_control_id", "extra")))
    assert not _fits(make(KNOWN[:-1]))
    assert not _fits(None)


def spy_on_exit(line: str) -> str:
    """A script that runs `iotnotify` (its arguments) and writes the f-string `line` on stderr
    when the command ends with os._exit."""
    return f"""
import os, sys
from iotnotify import crt_warmup
real = os._exit
def spy(code):
    sys.stderr.write(f"{line}\\n")
    sys.stderr.flush()
    real(code)
os._exit = spy
sys.argv = ["iotnotify", *sys.argv[1:]]
from iotnotify.launch import main
main()
"""


SPY_EXIT = spy_on_exit("quick exit {code}")


def test_send_ends_its_process_without_finalization_once_disconnected(cli, topic):
    """`send` ends with os._exit once its connections are closed (the interpreter's finalization
    cost 40-50 ms of a cold send), with its exit code and its output flushed."""
    python = IOTNOTIFY[0]
    done = subprocess.run([python, "-c", SPY_EXIT, "send", "--no-agent", "-l", topic], input=b"a\nb\n" * 100,
                          capture_output=True, env=cli.env, timeout=60)
    assert (done.returncode, done.stderr) == (0, b"quick exit 0\n")
    refused = subprocess.run([python, "-c", SPY_EXIT, "send", "--no-agent", "test/a/#", "x"],
                             capture_output=True, env=cli.env, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        b"iotnotify: error: topic 'test/a/#' contains a wildcard ('+' or '#'): publish needs an exact topic",
        b"quick exit 2"]
    keys = subprocess.run([python, "-c", SPY_EXIT, "keys"], capture_output=True, env=cli.env, timeout=60)
    assert keys.returncode == 0 and b"quick exit" not in keys.stderr  # other commands end as usual


WARMUP_SPY = spy_on_exit("warm-up: {crt_warmup.wait() or 'none'}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize("way", [["--via", "https"], ["--no-agent", "--via", "mqtt"]], ids=["quick-https", "cli-mqtt"])
def test_a_cold_send_initializes_tls_on_another_core_first(cli, topic, way):
    """crt_warmup.py: a send (quick_https.py's, or the CLI's over MQTT: --no-agent is not a form the
    quick path reads) starts s2n-tls in a thread while Python imports the rest, and awscrt's own
    import then finds it initialized. With one CPU there is nothing to gain and no warm-up."""
    done = subprocess.run([IOTNOTIFY[0], "-c", WARMUP_SPY, "send", *way, topic, "hi"],
                          capture_output=True, text=True, env=cli.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == ("warm-up: initialized" if _cores() > 1 else "warm-up: none")


WARMUP_THEN_IMPORT = """
import sys
from iotnotify import crt_warmup
started = crt_warmup.start()
import awscrt.io  # at once: waits for the warm-up, and must not deadlock on the import lock
print(started, crt_warmup.wait(), any(type(f).__name__ == "_WaitFirst" for f in sys.meta_path), flush=True)
crt_warmup.start()  # once per process
"""


def test_awscrt_imported_at_once_after_the_warm_up_waits_for_it():
    """The finder that makes awscrt's import wait holds the import lock, so the warm-up thread must
    import nothing: awscrt imported straight after start() gets an initialized s2n, no deadlock;
    the finder goes once used."""
    done = subprocess.run([IOTNOTIFY[0], "-c", WARMUP_THEN_IMPORT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    expected = ["True", "initialized", "False"] if _cores() > 1 else ["False", "False"]  # one CPU: "" said nothing
    assert done.stdout.split() == expected


AFTER_EXIT = """
import sys
from iotnotify import crt_warmup
sys.argv = ["iotnotify", *sys.argv[1:]]
from iotnotify.launch import main
try:
    main()
finally:
    sys.stderr.write(f"warm-up: {crt_warmup.wait() or 'none'}\\n")
"""


def test_a_command_that_ends_before_importing_awscrt_ends_cleanly_and_help_starts_none(cli):
    """A send refused by click starts a warm-up (launch.py cannot tell) and ends before awscrt is
    imported: it ends as usual, after the thread (atexit). --help starts none (it would only slow
    the help down)."""
    refused = subprocess.run([IOTNOTIFY[0], "-c", AFTER_EXIT, "send", "--no-agent", "--qos", "5", "t", "m"],
                             capture_output=True, text=True, env=cli.env, timeout=30)
    assert refused.returncode == 2
    assert "Invalid value for '--qos'" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[-1] == ("warm-up: initialized" if _cores() > 1 else "warm-up: none")
    helped = subprocess.run([IOTNOTIFY[0], "-c", AFTER_EXIT, "send", "--help"], capture_output=True, text=True,
                            env=cli.env, timeout=30)
    assert helped.returncode == 0 and "Usage:" in helped.stdout
    assert helped.stderr == "warm-up: none\n"


def test_the_warm_up_says_why_it_did_nothing():
    from importlib.machinery import ModuleSpec

    from iotnotify.crt_warmup import _initialize

    def missing(path: str):  # type: ignore[no-untyped-def]
        raise OSError(f"{path}: cannot open shared object file")

    class NoS2n:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            raise AttributeError(f"undefined symbol: {name}")

    spec = ModuleSpec("_awscrt", None, origin="/nowhere/_awscrt.so")
    assert _initialize(missing, None) == "no _awscrt"
    assert _initialize(missing, spec) == "not available: /nowhere/_awscrt.so: cannot open shared object file"
    assert _initialize(lambda _path: NoS2n(), spec) == "not available: undefined symbol: s2n_disable_atexit"
