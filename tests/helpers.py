"""What the tests share: running the command, a fresh user's environment, the local stack and
other brokers they start, a keys endpoint under their control. Fixtures built on these are in
conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iotnotify.local.broker import Broker

IOTNOTIFY = [sys.executable, "-m", "iotnotify"]
"""The command under test: this checkout's, as installed in this interpreter, never another on PATH."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_env(root: Path) -> dict[str, str]:
    """An environment with its own config, cache and state folders, like a fresh user account."""
    # IOTNOTIFY_NO_SHORTCUTS is the run's (scripts/check --no-shortcuts), not a user's setting
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTNOTIFY_") or k == "IOTNOTIFY_NO_SHORTCUTS"}
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[name] = str(root / name.lower())
    # agents' sockets: a short path of its own (a Unix socket's path is limited to 107 bytes)
    env["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="rt-")
    env["COLUMNS"] = "200"
    return env


@dataclass
class Cli:
    """Runs `iotnotify` as a subprocess with a given environment."""

    env: dict[str, str]

    def run(self, *args: str, input: bytes | str | None = None,  # noqa: A002 - subprocess.run's name
            timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run to completion; stdout/stderr as text (undecodable bytes replaced)."""
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run([*IOTNOTIFY, *args], input=data, capture_output=True, timeout=timeout,
                              env={**self.env, **(env or {})})
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode("utf-8", "replace"),
                                           proc.stderr.decode("utf-8", "replace"))

    def run_bytes(self, *args: str, input: bytes | None = None,  # noqa: A002
                  timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run to completion keeping stdout as bytes."""
        return subprocess.run([*IOTNOTIFY, *args], input=input, capture_output=True, timeout=timeout, env=self.env)

    def start(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start in the background (stdout and stderr piped)."""
        return subprocess.Popen([*IOTNOTIFY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # type: ignore[call-overload]
                                env=self.env, **{"stdin": subprocess.DEVNULL, **kwargs})

    def subscriber(self, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start `subscribe` and return once the broker acknowledged the subscription (--ready-file)."""
        return self.ready(tmp_path, "subscribe", *args)

    def ready(self, tmp_path: Path, command: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a COMMAND that takes --ready-file (subscribe, on, wait, watch...) and return once the
        broker acknowledged its subscription."""
        ready = tmp_path / f"ready-{time.monotonic_ns()}"
        proc = self.start(command, "--ready-file", str(ready), *args)
        wait_for(lambda: ready.exists() or proc.poll() is not None, 30, f"{command} ready")
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"{command} exited {proc.returncode}: {err.decode()}")
        return proc


def imports_of(env: dict[str, str], *args: str) -> set[str]:
    """The modules `iotnotify ARGS` imports (`python -X importtime`), once it exited 0."""
    done = subprocess.run([*IOTNOTIFY[:1], "-X", "importtime", *IOTNOTIFY[1:], *args],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition` until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Stack:
    """A running `iotnotify local` and how to reach it; what it prints goes to files (its log of
    refusals can outgrow a pipe)."""

    process: subprocess.Popen[bytes]
    cli: Cli
    wss_port: int
    keys_port: int
    mqtt_port: int
    state: Path
    out_file: Path
    err_file: Path
    ws_port: int = 0  # the browser page's ws:// listener

    @property
    def page(self) -> str:
        """The browser page's URL."""
        return f"http://127.0.0.1:{self.keys_port}/"

    def stdout(self) -> str:
        return self.out_file.read_text(errors="replace")

    def log(self) -> str:
        """What the stack logged on stderr: AWS IoT Core's refusals and throttling."""
        return self.err_file.read_text(errors="replace")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.keys_port}/iot/keys"

    @property
    def ca_file(self) -> str:
        return str(self.state / "iotnotify" / "local" / "tls" / "ca.pem")


def start_stack(root: Path, *extra: str) -> Stack:
    """Start `iotnotify local` on free ports under `root` and wait until it serves keys."""
    env = user_env(root)
    cli = Cli(env)
    wss, keys, mqtt, ws = free_port(), free_port(), free_port(), free_port()
    out_file, err_file = root / f"local-{wss}.out", root / f"local-{wss}.err"
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = subprocess.Popen([*IOTNOTIFY, "local", "--port", str(wss), "--keys-port", str(keys), "--mqtt-port",
                                 str(mqtt), "--ws-port", str(ws), *extra], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=env)
    stack = Stack(proc, cli, wss, keys, mqtt, Path(env["XDG_STATE_HOME"]), out_file, err_file, ws)

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"iotnotify local exited: {stack.log()}")
        try:
            urllib.request.urlopen(stack.endpoint, timeout=1).read()
        except OSError:
            return False
        config = Path(env["XDG_CONFIG_HOME"]) / "iotnotify" / "config.toml"
        written = config.exists() and stack.endpoint in config.read_text()
        return written and "send demo/hello" in stack.stdout()  # the banner's last line: all set

    wait_for(serving, 30, "iotnotify local")
    return stack


def stop_stack(stack: Stack) -> int:
    """SIGINT the stack (as Ctrl-C does) and return its exit code."""
    stack.process.send_signal(signal.SIGINT)
    try:
        return stack.process.wait(15)
    finally:
        if stack.process.poll() is None:
            stack.process.kill()


SESSION_TOPICS = "test/*,demo/*,/serverless/pubsub"
"""What the session stack's keys may use: every test has a topic of its own below test/ (the `topic`
fixture), as a deployment with IOTNOTIFY_TOPICS=test/* would allow."""


@contextlib.contextmanager
def running_stack(root: Path, *extra: str):
    """`iotnotify local` with `extra` flags, stopped (as Ctrl-C does) when the block ends."""
    running = start_stack(root, *extra)
    try:
        yield running
    finally:
        stop_stack(running)


def user_of(stack: Stack) -> Cli:
    """The CLI as a user of `stack`: `--profile local` via IOTNOTIFY_PROFILE."""
    return Cli({**stack.cli.env, "IOTNOTIFY_PROFILE": "local"})


class FakeEndpoint:
    """A keys endpoint under the test's control: status, body, delay (an in-process HTTP server)."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b"{}"
        self.delay = 0.0
        self.requests = 0
        self.script: list[tuple[int, bytes]] = []  # answers to give first, in order
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests += 1
                time.sleep(endpoint.delay)
                status, body = endpoint.script.pop(0) if endpoint.script else (endpoint.status, endpoint.body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/iot/keys"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, status: int = 200, body: bytes | str | dict | None = None, delay: float = 0.0) -> None:
        """Set the answer to every request (after any scripted ones)."""
        self.status, self.body, self.delay = status, self._bytes(body), delay

    def then(self, status: int, body: bytes | str | dict | None = None) -> FakeEndpoint:
        """Script one answer to come before the standing one."""
        self.script.append((status, self._bytes(body)))
        return self

    @staticmethod
    def _bytes(body: bytes | str | dict | None) -> bytes:
        return json.dumps(body).encode() if isinstance(body, dict) else (
            body.encode() if isinstance(body, str) else (body or b""))


def tutorial_keys(host: str = "127.0.0.1", **extra: object) -> dict[str, object]:
    """The tutorial's exact response shape (five fields), plus any extension fields."""
    return {"iotEndpoint": host, "region": "us-east-1", "accessKey": "ASIAEXAMPLEEXAMPLE00",
            "secretKey": "SECRETsecretSECRETsecret", "sessionToken": "TOKENtokenTOKENtoken", **extra}


@contextlib.contextmanager
def broker_behind_front(folder: Path):
    """A Mosquitto of the test's own behind the wss front, to stop and start at will, logging the
    packets it sends (acknowledged() reads them): yields (broker, wss port, CA file)."""
    from iotnotify.local.broker import Broker
    from iotnotify.local.front import WebSocketFront
    from iotnotify.local.tls import ensure_tls_files

    tls = ensure_tls_files(folder / "tls")
    broker, wss = Broker(folder / "broker", free_port()), free_port()
    broker.extra_config = "log_type debug\n"
    broker.start()
    front = WebSocketFront(wss, broker.port, tls)
    front.start()
    try:
        yield broker, wss, str(tls.ca_file)
    finally:
        front.stop()
        broker.stop()


ACCOUNT = "123456789012"  # moto's account


def aws_env(root: Path, moto_url: str, **extra: str) -> dict[str, str]:
    """A user with AWS credentials whose AWS calls all go to the moto server."""
    env = {name: value for name, value in user_env(root).items() if not name.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "verysecretexample",
                "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": moto_url,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(root / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(root / "none")})
    env.update(extra)
    return env


def mosquitto_subscriber(port: int, topic: str, *args: str) -> subprocess.Popen[bytes]:
    """mosquitto_sub on a broker's plain listener (`-d`: its protocol trace on stdout), returned once
    the broker acknowledged its subscription; read the rest with communicate()."""
    proc = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-p", str(port), "-h", "127.0.0.1", "-q", "1",
                             "-t", topic, "-d", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: list[bytes] = []

    def subscribed() -> bool:
        seen.append(proc.stdout.readline() if proc.stdout is not None else b"")
        return b"SUBACK" in seen[-1]

    wait_for(subscribed, 20, "mosquitto_sub's SUBACK")
    return proc


def acknowledged(broker: Broker) -> int:
    """How many PUBACKs a broker of broker_behind_front() has sent: messages it took."""
    try:
        return broker.log_file.read_text(errors="replace").count("Sending PUBACK to ")
    except OSError:
        return 0


@dataclass
class LocalProxy:
    """A tinyproxy (Debian's tinyproxy-bin) on a free loopback port, and its log of what it relayed."""

    url: str
    log: Path

    def relayed(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def tinyproxy(folder: Path, deny: bool = False):
    """A real HTTP proxy (CONNECT and plain requests) for the test; `deny`: one that refuses every
    request with 403, as a corporate proxy refusing a destination does."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / f"tinyproxy-{port}.log"
    config = folder / f"tinyproxy-{port}.conf"
    config.write_text(f'Port {port}\nListen 127.0.0.1\nTimeout 60\nLogFile "{log}"\nLogLevel Connect\n'
                      + ("Deny 127.0.0.1\n" if deny else ""))
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    proc = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listening() -> bool:
            assert proc.poll() is None, "tinyproxy exited"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        wait_for(listening, 10, "tinyproxy listening")
        yield LocalProxy(f"http://127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def run_in_process(args: list[str], env: dict[str, str], input: bytes = b"") -> subprocess.CompletedProcess[str]:  # noqa: A002
    """`iotnotify ARGS` run in this process (cli.main, as launch.py runs it, without the process's
    signal handlers and exit), with `env` as the whole environment and `input` on stdin: for the many quick
    tests of what the command refuses, where a new Python per run would cost a third of a second."""
    from click.testing import CliRunner

    from iotnotify.cli import main

    removed: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    with CliRunner().isolation(input=input, env={**removed, **env}) as (out, err, _):
        code = main(list(args))
        stdout, stderr = out.getvalue(), err.getvalue()
    return subprocess.CompletedProcess(args, code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))


def spy_on_exit(line: str) -> str:
    """A script that runs `iotnotify` (its arguments) and writes the f-string `line` on stderr
    when the command ends with os._exit."""
    return f"""
import os, sys
from iotnotify.crt import warmup as crt_warmup
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


def waiting(inbox):  # type: ignore[no-untyped-def]
    """inbox.wait() in a thread of its own (it writes what was rendered); the thread, and what ended
    the wait."""
    ended: list[BaseException] = []

    def wait() -> None:
        try:
            inbox.wait()
        except BaseException as e:
            ended.append(e)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    return waiter, ended


class Lines:
    """What a started process prints on stdout, a line at a time as it comes (a thread reads it),
    for tests that act on each line; `stop` ends the process as Ctrl-C does."""

    def __init__(self, proc: subprocess.Popen[bytes], parse: Callable[[bytes], object] = bytes.decode) -> None:
        self.proc, self.lines = proc, []  # type: ignore[var-annotated]
        assert proc.stdout is not None
        stdout = proc.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(parse(line) for line in stdout), daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 20) -> tuple[int, str]:
        """SIGINT, then (the exit code, stderr) once it ended; its pipes closed."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stderr is not None and self.proc.stdout is not None
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code, err
