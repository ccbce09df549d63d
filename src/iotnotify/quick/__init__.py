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
    from typing import Any

    from iotnotify.outgoing import Outgoing
    from iotnotify.settings import Settings


class _Unreadable(Exception):
    """Settings click would refuse: the CLI reads them again and says what is wrong."""


def quick_send(argv: list[str]) -> int | None:
    """Send as `iotnotify send` would; the exit code, or None when the CLI should do it all (then
    nothing was read from stdin)."""
    from iotnotify.booleans import parse_bool
    from iotnotify.outgoing import VIAS
    from iotnotify.quick.argv import parse

    parsed = parse(argv)
    env = os.environ
    if parsed is None or env.get("IOTNOTIFY_DEBUG"):
        return None
    outgoing, options = parsed
    via = options.get("via") or env.get("IOTNOTIFY_VIA") or "auto"
    try:
        agent = not parse_bool(env.get("IOTNOTIFY_NO_AGENT", ""))  # as click reads the flag's variable
    except ValueError:
        return None
    if via not in VIAS:
        return None
    try:
        return _by_route(outgoing, options, via, agent, options.get("profile") or env.get("IOTNOTIFY_PROFILE") or None)
    except _Unreadable:
        return None


def _by_route(outgoing: Outgoing, options: dict[str, Any], via: str, agent: bool, profile: str | None) -> int | None:
    """Try the ways `route` gives, as the CLI's `send` does, as far as this path takes them."""
    from iotnotify.outgoing import AGENT, HTTPS, route

    settings, read = _Settings(profile), False
    for way, more in route(outgoing, via, agent, settings):
        if way == AGENT:
            from iotnotify.quick.agent import NoAgent, through_agent

            try:
                return through_agent(outgoing, options, profile)
            except NoAgent:
                if settings().persist is not None:
                    return None  # the CLI starts one
        elif way == HTTPS:
            from iotnotify.errors import HttpsUnsupported
            from iotnotify.quick.https import publish

            try:
                return publish(outgoing, options, settings(), fallback=more)
            except HttpsUnsupported:
                read = True  # over MQTT, from here: what stdin gave cannot be read again by the CLI
        elif read:
            from iotnotify.quick.https import publish

            return publish(outgoing, options, settings(), https=False)
    return None  # MQTT: the CLI's


class _Settings:
    """The settings from IOTNOTIFY_* variables and the profile, resolved when first asked for (a send
    an agent takes needs none); _Unreadable for what click would refuse."""

    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self.settings: Settings | None = None

    def __call__(self) -> Settings:
        if self.settings is None:
            from iotnotify import errors
            from iotnotify.settings import from_environment

            try:
                self.settings = from_environment(self.profile)
            except (ValueError, errors.IotNotifyError):
                raise _Unreadable from None
        return self.settings
