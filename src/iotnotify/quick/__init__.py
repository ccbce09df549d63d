"""A plain `send` without loading click (which costs more than the rest of such a send): handed to
a running agent (quick/agent.py) or, if none serves it, one message published over HTTPS from here
(quick/https.py), as `route` (outgoing.py) chooses for the CLI's `send` too. Only the common forms
are read here (quick/argv.py); anything else, or a way only the CLI takes (MQTT, starting an agent
for --persist, --debug's trace), is left to the CLI, which reads it all and says what is wrong.
Nothing is read from stdin before a way has taken the send."""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from iotnotify.outgoing import Outgoing
    from iotnotify.settings import Settings


class _Unreadable(Exception):
    """Settings click would refuse: the CLI reads them again and says what is wrong."""


def quick_send(argv: list[str]) -> int | None:
    """Send as `iotnotify send` would; the exit code, or None when the CLI should do it all (then
    nothing was read from stdin)."""
    from iotnotify.quick.argv import parse

    parsed = parse(argv)
    if parsed is None or os.environ.get("IOTNOTIFY_DEBUG") or os.environ.get("IOTNOTIFY_SENDER"):
        return None  # (a sender's name is a property: the CLI's to add)
    outgoing, options = parsed
    chosen = environment(options, os.environ)
    if chosen is None:
        return None
    try:
        return _by_route(outgoing, options, *chosen, options.get("profile") or os.environ.get("IOTNOTIFY_PROFILE") or None)
    except _Unreadable:
        return None


def environment(options: dict[str, Any], env: Mapping[str, str]) -> tuple[str, bool] | None:
    """--via (the option, else IOTNOTIFY_VIA, else auto) and whether an agent may take the send
    (IOTNOTIFY_NO_AGENT, read as click reads a flag's variable); None for a value click refuses."""
    from iotnotify.outgoing import VIAS

    via = options.get("via") or env.get("IOTNOTIFY_VIA") or "auto"
    no_agent = False
    if "IOTNOTIFY_NO_AGENT" in env:
        from iotnotify.booleans import parse_bool

        try:
            no_agent = parse_bool(env["IOTNOTIFY_NO_AGENT"])
        except ValueError:
            return None
    return (via, not no_agent) if via in VIAS else None


def _by_route(outgoing: Outgoing, options: dict[str, Any], via: str, agent: bool, profile: str | None) -> int | None:
    """Try the ways `route` gives in turn, as the CLI's `send` does, as far as this path takes them:
    once the message was read (an agent gone before it took it, a broker that takes no HTTPS
    publish), the next way sends it from here, stdin's too."""
    from iotnotify.outgoing import AGENT, HTTPS, route

    settings, source, tried_agent, read = _Settings(profile), None, False, False
    for way, more in route(outgoing, via, agent, settings):
        if way == AGENT:
            from iotnotify.quick.agent import AgentGone, NoAgent, through_agent

            try:
                return through_agent(outgoing, options, profile)
            except NoAgent:
                tried_agent = True
            except AgentGone:
                tried_agent = read = True
            continue
        if not read:
            if way != HTTPS or (tried_agent and settings().persist is not None):
                return None  # MQTT, or an agent to start for --persist: the CLI's
            from iotnotify.quick.https import read_message

            payloads = read_message(options)
            if payloads is None:
                return None  # the CLI says what is wrong with the file
            outgoing.payloads, read = payloads, True
        from iotnotify.errors import HttpsUnsupported
        from iotnotify.quick.https import key_source, publish

        source = source or key_source(settings())  # one for every way: keys fetched once
        try:
            return publish(outgoing, settings(), source, https=way == HTTPS, fallback=more)
        except HttpsUnsupported:
            continue  # nothing was delivered: MQTT, from here
    return None


class _Settings:
    """The settings from IOTNOTIFY_* variables and the profile, resolved when first asked for (a send
    an agent takes needs none); _Unreadable for what click would refuse."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self.settings: Settings | None = None

    def __call__(self) -> Settings:
        if self.settings is None:
            from iotnotify.crt import warmup

            warmup.start()  # only a way that connects asks for settings: TLS's start-up on another core meanwhile
            from iotnotify import errors
            from iotnotify.settings import from_environment

            try:
                self.settings = from_environment(self.profile, stdin=False)  # stdin is the message's, or the CLI's
            except (ValueError, errors.IotNotifyError):
                raise _Unreadable from None
        return self.settings
