"""AWS IoT Core's lifecycle events from the local stack, received by a real client whose keys allow
them (`iotnotify local --lifecycle-events`, the endpoint's IOTNOTIFY_LIFECYCLE_EVENTS) and refused
to keys that do not (the default). test_gateway.py has each event's fields and reasons."""

import json
import time

import pytest

from tests.helpers import running_stack, user_of


@pytest.fixture(scope="module")
def events_stack(tmp_path_factory: pytest.TempPathFactory):
    with running_stack(tmp_path_factory.mktemp("events"), "--lifecycle-events", "--any-client-id") as stack:
        yield stack


def test_a_watcher_sees_another_client_connect_subscribe_and_go(events_stack, tmp_path):
    cli = user_of(events_stack)
    client = f"watched-{time.monotonic_ns()}"
    watcher = cli.subscriber(tmp_path, f"$aws/events/presence/+/{client}", f"$aws/events/subscriptions/+/{client}",
                             "--json", "-C", "3", "-W", "30")
    done = cli.run("subscribe", "demo/x", "--client-id", client, "-W", "1", "--quiet")
    assert done.returncode == 7, done.stderr  # nothing arrived within the second: the point is its events
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    events = [json.loads(json.loads(line)["payload"]) for line in out.splitlines()]
    assert [e["eventType"] for e in events] == ["connected", "subscribed", "disconnected"]
    assert {e["clientId"] for e in events} == {client}
    assert events[1]["topics"] == ["demo/x"]
    assert events[2]["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT" and events[2]["clientInitiatedDisconnect"]
    assert events[0]["versionNumber"] == events[2]["versionNumber"]
    assert events[0]["sessionIdentifier"] == events[2]["sessionIdentifier"]


def test_keys_without_the_grant_may_not_subscribe_to_lifecycle_events(cli):
    """The default stack (and endpoint) grants no $aws/events/: the client says so before asking."""
    result = cli.run("subscribe", "$aws/events/presence/+/+", "-W", "2")
    assert result.returncode == 10, result.stderr
    assert "may not subscribe to '$aws/events/presence/+/+'" in result.stderr
