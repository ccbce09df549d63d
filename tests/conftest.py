"""Fixtures: a real local stack (`iotnotify local`: Mosquitto + keys endpoint) on free ports, and
helpers that run the installed `iotnotify` command the way a user or a script does."""

from __future__ import annotations

import pytest

from tests.helpers import (
    SESSION_TOPICS,
    Cli,
    FakeEndpoint,
    Stack,
    free_port,
    running_stack,
    user_of,
)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    """One local stack for the whole session, playing by AWS IoT Core's rules."""
    with running_stack(tmp_path_factory.mktemp("stack"), "--topics", SESSION_TOPICS) as running:
        yield running


@pytest.fixture
def cli(stack: Stack) -> Cli:
    return user_of(stack)


@pytest.fixture(scope="session")
def any_id_stack(tmp_path_factory: pytest.TempPathFactory):
    """A stack whose keys may connect with any client id (`--any-client-id`, as IOTNOTIFY_ANY_CLIENT_ID=true
    on AWS): for the tests of client ids and persistent sessions named by the user."""
    with running_stack(tmp_path_factory.mktemp("any-id"), "--topics", SESSION_TOPICS, "--any-client-id") as running:
        yield running


@pytest.fixture
def any_id_cli(any_id_stack: Stack) -> Cli:
    return user_of(any_id_stack)


@pytest.fixture(scope="session")
def permissive_stack(tmp_path_factory: pytest.TempPathFactory):
    """`iotnotify local --permissive`: for the few tests of speed parts (send's window, subscribe's
    output in bursts) that need thousands of messages a second, which AWS's throttle (100 a second
    per connection) would hide; the throttle itself is tested in test_aws_rules.py."""
    with running_stack(tmp_path_factory.mktemp("permissive"), "--permissive") as running:
        yield running


@pytest.fixture
def fast_cli(permissive_stack: Stack) -> Cli:
    return user_of(permissive_stack)


@pytest.fixture
def user(stack: Stack):
    """The stack's user with a runtime folder of their own (agents' sockets); their agents stopped
    afterwards."""
    import tempfile

    cli = user_of(stack)
    cli = Cli({**cli.env, "XDG_RUNTIME_DIR": tempfile.mkdtemp(prefix="rt-")})
    yield cli
    cli.run("agent", "stop", "--all")


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic of this test's own, so tests sharing the broker do not see each other."""
    return "test/" + request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:80]


@pytest.fixture
def fake_endpoint():
    endpoint = FakeEndpoint()
    yield endpoint
    endpoint.httpd.shutdown()
    endpoint.httpd.server_close()


@pytest.fixture(scope="session")
def moto_url():
    """A moto server on loopback: the AWS control plane (IAM, STS, IoT) for setup-role and --aws."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


BROKER_FIXTURES = {"stack", "any_id_stack", "permissive_stack", "own_broker", "strict_broker", "restartable_stack",
                   "ruled_stack"}
"""Fixtures that start Mosquitto: a test using one (directly or through another fixture) is marked
`mosquitto`; tests that start a stack themselves carry the mark by hand."""


def pytest_report_header() -> list[str]:
    """Which shortcuts into awscrt this run has (src/iotnotify/crt/), with the versions."""
    import awscrt

    from iotnotify.crt.report import report

    states = ", ".join(f"{name} {state}" for name, state in report().items())
    return [f"awscrt {awscrt.__version__}, shortcuts: {states}"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mosquitto)
