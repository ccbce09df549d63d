"""The shortcuts into awscrt's internals (src/iotnotify/crt/): each does what it says, is on only
for the versions it was read against, and IOTNOTIFY_NO_SHORTCUTS turns each off with everything
still working. The tests marked `shortcuts` check a shortcut's effect in this process, so
`scripts/check --no-shortcuts` (the suite with all of them off) leaves them out; the others run
their processes with the switch as they need it."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from iotnotify import crt
from iotnotify.crt.nodelay import set_nodelay
from iotnotify.keys import endpoint_source
from iotnotify.mqtt import ConnectOptions, open_session
from tests.helpers import IOTNOTIFY, Cli, spy_on_exit

SRC = Path(__file__).resolve().parent.parent / "src" / "iotnotify"
REPORT = "import json; from iotnotify.crt.report import report; print(json.dumps(report()))"


def _report(switch: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != crt.SWITCH}
    if switch is not None:
        env[crt.SWITCH] = switch
    done = subprocess.run([sys.executable, "-c", REPORT], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_shortcut_is_on_with_the_versions_installed():
    """Fails when an upgrade (or a machine) turns a shortcut off: then read the new awscrt's code,
    and either extend crt.CHECKED or let the shortcut go (bench/README.md says what each is worth)."""
    report = _report(None)
    if len(os.sched_getaffinity(0)) < 2:
        assert report.pop("warmup") == "off: one CPU"
    assert report == dict.fromkeys(crt.NAMES, "on")


def test_the_switch_turns_all_or_some_off():
    assert set(_report("1").values()) == {f"off: {crt.SWITCH} is set"}
    some = _report("nodelay, warmup")
    assert {name for name, state in some.items() if state != "on"} == {"nodelay", "warmup"}
    spaced = _report(" WARMUP ")
    assert {name for name, state in spaced.items() if state != "on"} == {"warmup"}
    assert set(_report("all,nodelay").values()) == {f"off: {crt.SWITCH} is set"}
    assert _report("0") == _report(None)


def test_private_reaches_live_in_crt_only():
    """awscrt's private names, its native module and ctypes appear in crt/ and nowhere else in the
    package (local/broker.py's ctypes is libc's prctl, not awscrt's)."""
    allowed = {SRC / "local" / "broker.py": ("ctypes",)}
    found = []
    for path in SRC.rglob("*.py"):
        if SRC / "crt" in path.parents:
            continue
        text = path.read_text()
        for needle in ("_awscrt", "SLF001", "ctypes", "_ClientCore", "_binding", "_expiry_time"):
            if needle in text and needle not in allowed.get(path, ()):
                found.append(f"{path.relative_to(SRC)}: {needle}")
    assert found == []


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


@pytest.mark.shortcuts
def test_set_nodelay_sets_it_on_the_sockets_to_that_port_only():
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_server(("127.0.0.1", 0)) as other:
        port, other_port = server.getsockname()[1], other.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as a, socket.create_connection(("127.0.0.1", other_port)) as b:
            assert set_nodelay(port) == 1
            assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert b.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest.mark.shortcuts
def test_the_clients_socket_to_the_broker_has_nodelay(stack):
    connection = open_session(endpoint_source(stack.endpoint, 5), ConnectOptions(ca_file=stack.ca_file))
    try:
        assert _nodelay_of_sockets_to(connection.keys.port) and all(_nodelay_of_sockets_to(connection.keys.port))
    finally:
        connection.disconnect()


def test_each_shortcut_is_on_only_for_the_versions_read(monkeypatch):
    monkeypatch.delenv(crt.SWITCH, raising=False)
    assert [crt.checked("nodelay", v) for v in ("0.19.9", "0.20.0", "0.36.1", "0.38.1", "0.39.0", "1.0.0",
                                                "dev")] == [False, True, True, True, False, False, False]
    assert crt.decide("warmup", "0.39.0") == "awscrt 0.39.0 is not among those read (0.20 to 0.38)"
    assert crt.decide("warmup", "0.36.1") == ""



WARMUP_SPY = spy_on_exit("warm-up: {crt_warmup.wait() or 'none'}")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


@pytest.mark.shortcuts
@pytest.mark.parametrize("way", [["--via", "https"], ["--no-agent", "--via", "mqtt"]], ids=["quick-https", "cli-mqtt"])
def test_a_cold_send_initializes_tls_on_another_core_first(cli, topic, way):
    """crt/warmup.py: a send (quick/https.py's, or the CLI's over MQTT: --no-agent is not a form the
    quick path reads) starts s2n-tls in a thread while Python imports the rest, and awscrt's own
    import then finds it initialized. With one CPU there is nothing to gain and no warm-up."""
    done = subprocess.run([IOTNOTIFY[0], "-c", WARMUP_SPY, "send", *way, topic, "hi"],
                          capture_output=True, text=True, env=cli.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == ("warm-up: initialized" if _cores() > 1 else "warm-up: none")


WARMUP_THEN_IMPORT = """
import os, sys
from iotnotify.crt import warmup as crt_warmup
started = crt_warmup.start()
import awscrt.io  # at once: waits for the warm-up, and must not deadlock on the import lock
print(started, crt_warmup.wait(), any(type(f).__name__ == "_WaitFirst" for f in sys.meta_path),
      os.environ.get("S2N_DONT_MLOCK"), flush=True)
crt_warmup.start()  # once per process
"""


@pytest.mark.shortcuts
def test_awscrt_imported_at_once_after_the_warm_up_waits_for_it():
    """The finder that makes awscrt's import wait holds the import lock, so the warm-up thread must
    import nothing: awscrt imported straight after start() gets an initialized s2n, no deadlock;
    the finder stays (inert: taking it out while importlib loops over sys.meta_path would skip the
    next finder), and the environment is as it was."""
    done = subprocess.run([IOTNOTIFY[0], "-c", WARMUP_THEN_IMPORT], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    expected = ["True", "initialized", "True", "None"] if _cores() > 1 else ["False", "False", "None"]
    assert done.stdout.split() == expected


AFTER_EXIT = """
import sys
from iotnotify.crt import warmup as crt_warmup
sys.argv = ["iotnotify", *sys.argv[1:]]
from iotnotify.launch import main
try:
    main()
finally:
    sys.stderr.write(f"warm-up: {crt_warmup.wait() or 'none'}\\n")
"""


@pytest.mark.shortcuts
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


def test_the_warm_up_says_why_it_did_nothing(tmp_path):
    from importlib.machinery import ModuleSpec

    from iotnotify.crt.warmup import _initialize

    def missing(path: str):  # type: ignore[no-untyped-def]
        raise OSError(f"{path}: cannot open shared object file")

    class NoS2n:
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            raise AttributeError(f"undefined symbol: {name}")

    library = tmp_path / "_awscrt.so"
    spec = ModuleSpec("_awscrt", None, origin=str(library))
    assert _initialize(missing, None) == "no _awscrt"
    assert _initialize(missing, spec) == "no awscrt version found beside _awscrt"
    (tmp_path / "awscrt-0.99.0.dist-info").mkdir()
    assert _initialize(missing, spec) == "awscrt 0.99.0 is not among those read"
    (tmp_path / "awscrt-0.99.0.dist-info").rename(tmp_path / "awscrt-0.36.1.dist-info")
    assert _initialize(missing, spec) == f"not available: {library}: cannot open shared object file"
    assert _initialize(lambda _path: NoS2n(), spec) == "not available: undefined symbol: s2n_disable_atexit"


MEMLOCK_SPY = spy_on_exit("S2N_DONT_MLOCK {os.environ.get('S2N_DONT_MLOCK')}, warm-up: {crt_warmup.wait() or 'none'}")


@pytest.mark.shortcuts
def test_a_send_warms_up_where_memory_may_not_be_locked(cli, topic):
    """s2n initialized by the warm-up keeps s2n's own allocator, which mlocks each allocation unless
    S2N_DONT_MLOCK is set: where a process may lock no memory (RLIMIT_MEMLOCK 0, and as root without
    CAP_IPC_LOCK), awscrt's import then aborted the process. The variable is set for the warm-up only."""
    limits = ["prlimit", "--memlock=0"]
    if os.geteuid() == 0:  # root may lock memory whatever the limit: drop that capability
        limits += ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"]
    for way in (["--via", "https"], ["--no-agent", "--via", "mqtt"]):
        done = subprocess.run([*limits, IOTNOTIFY[0], "-c", MEMLOCK_SPY, "send", *way, topic, "hi"],
                              capture_output=True, text=True, env=cli.env, timeout=60)
        assert done.returncode == 0, done.stderr
        warmed = "initialized" if len(os.sched_getaffinity(0)) > 1 else "none"
        assert done.stderr.splitlines()[-1] == f"S2N_DONT_MLOCK None, warm-up: {warmed}"


@pytest.mark.shortcuts
def test_an_agent_a_send_starts_gets_the_senders_environment(user, topic):
    """`send --persist` starts its agent before awscrt is imported, while the warm-up's S2N_DONT_MLOCK
    is set: the agent must not inherit it (nor anything else the warm-up does for itself)."""
    done = user.run("send", "--persist", "1m", topic, "x")
    assert done.returncode == 0, done.stderr
    status = json.loads(user.run("agent", "status", "--json").stdout)
    try:
        environment = Path(f"/proc/{status['pid']}/environ").read_bytes().split(b"\0")
        assert not [entry for entry in environment if entry.startswith(b"S2N_")]
    finally:
        user.run("agent", "stop")


def test_everything_works_with_no_shortcuts(cli, tmp_path):
    """With IOTNOTIFY_NO_SHORTCUTS=1 awscrt's public API does it all: a subscriber (MQTT 5, QoS 1)
    gets what a one-off send over HTTPS, one over MQTT with properties, a stream at QoS 1 and an
    MQTT 3.1.1 send publish, whole and in order."""
    env = {**cli.env, crt.SWITCH: "1"}
    sub = Cli(env).subscriber(tmp_path, "--json", "-q", "1", "-C", "103", "-W", "60", "test/off/#")
    try:
        sends = [["--via", "https", "test/off/a", "one"],
                 ["--no-agent", "--via", "mqtt", "--content-type", "text/plain", "test/off/b", "two"],
                 ["--no-agent", "-q", "1", "-l", "test/off/c"],
                 ["--no-agent", "--protocol", "3.1.1", "test/off/d", "four"]]
        for args in sends:
            stdin = "".join(f"{i}\n" for i in range(100)) if "-l" in args else None
            done = subprocess.run([*IOTNOTIFY, "send", *args], input=stdin, capture_output=True, text=True,
                                  env=env, timeout=60)
            assert done.returncode == 0, done.stderr
        out, err = sub.communicate(timeout=60)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    got = [json.loads(line) for line in out.decode().splitlines()]
    assert [m["payload"] for m in got] == ["one", "two", *map(str, range(100)), "four"]
    assert got[1]["content_type"] == "text/plain"
