"""outgoing.route: the one decision of where a send goes, shared by the CLI's `send` and the quick
path (the commands that take each way are tested against brokers in test_agent.py and
test_https_publish.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotnotify.errors import UsageError
from iotnotify.mqtt import Will
from iotnotify.outgoing import Outgoing, route
from iotnotify.properties import Properties
from iotnotify.settings import Settings


def settings(client_id: str | None = None, protocol: str = "5") -> Settings:
    return Settings(profile=None, config_path=Path("none.toml"), protocol=protocol, client_id=client_id)


def ways(outgoing: Outgoing, via: str = "auto", agent: bool = True, chosen: Settings | None = None) -> list:
    return list(route(outgoing, via, agent, lambda: chosen or settings()))


def test_one_message_tries_the_agent_then_https_then_mqtt() -> None:
    one = Outgoing("t", [b"x"])
    assert ways(one) == [("agent", True), ("https", True), ("mqtt", False)]
    assert ways(one, agent=False) == [("https", True), ("mqtt", False)]  # --no-agent, IOTNOTIFY_NO_AGENT
    assert ways(one, via="mqtt") == [("agent", True), ("mqtt", False)]  # the agent's connection is MQTT


@pytest.mark.parametrize("outgoing, chosen", [
    (Outgoing("t", iter([b"x"])), None),  # -l: lines as they come
    (Outgoing("t", [b"x", b"y"]), None),
    (Outgoing("t", [b"{}"], records=True), None),
    (Outgoing("t", [b"x"], properties=Properties(content_type="text/plain")), None),
    (Outgoing("t", [b"x"]), settings(client_id="me")),
    (Outgoing("t", [b"x"]), settings(protocol="3.1.1")),
], ids=["lines", "two", "records", "properties", "client-id", "mqtt-3.1.1"])
def test_what_needs_mqtt_or_more_than_one_message_skips_https(outgoing: Outgoing, chosen: Settings | None) -> None:
    assert ways(outgoing, chosen=chosen) == [("agent", True), ("mqtt", False)]


def test_a_will_or_more_connections_need_a_connection_of_their_own() -> None:
    assert ways(Outgoing("t", [b"x"], will=Will("w"))) == [("mqtt", False)]
    assert ways(Outgoing("t", [b"x"], connections=2)) == [("mqtt", False)]


def test_via_https_is_https_alone_and_refuses_what_only_mqtt_can_do() -> None:
    assert ways(Outgoing("t", iter([b"x"])), via="https") == [("https", False)]
    for outgoing, said in ((Outgoing("t", [b"x"], will=Will("w")), "--will-topic"),
                           (Outgoing("t", [b"x"], connections=2), "--connections"),
                           (Outgoing("t", [b"x"], properties=Properties(content_type="a")), "properties")):
        with pytest.raises(UsageError, match=said):
            ways(outgoing, via="https")


def test_no_settings_are_resolved_before_the_agent_had_its_chance() -> None:
    """The quick path resolves none (no profile read) for a send an agent takes."""
    def unread() -> Settings:
        raise AssertionError("settings resolved")

    first = next(route(Outgoing("t", [b"x"]), "auto", True, unread))
    assert first == ("agent", True)


def test_the_quick_path_says_single_before_reading_the_message() -> None:
    assert Outgoing("t", (), single=True).single
    assert not Outgoing("t", (), single=False).single
    assert "secret" not in repr(Outgoing("t", [b"secret"]))
