"""The quick path's way through a running agent (bench/README.md says what it saves): the agent is
found by the route file a send through the CLI (or `agent start`) left for the same profile,
variables, folder and config file (agent/__init__.py), so that no settings are resolved here."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any

    from iotnotify.outgoing import Outgoing


class NoAgent(Exception):
    """No agent is known to serve this send's settings: nothing was read or handed over."""


class AgentGone(Exception):
    """The agent went away before it took the send: nothing was handed over, and the message was
    read (outgoing.payloads): the route's next way sends it."""


def through_agent(outgoing: Outgoing, options: dict[str, Any], profile: str | None) -> int | None:
    """Send through the agent the route file names for `profile`; the exit code, or None when the
    CLI should take the send (a socket folder that is not private, a file it cannot read). NoAgent
    if none is known, AgentGone if it went away."""
    from iotnotify.agent import owned, route, runtime_dir, sockets

    if not sockets():
        try:
            runtime_dir()
        except OSError:
            return None  # a folder that is not private: the CLI warns that it is not used
        raise NoAgent
    try:
        found = route(profile)
    except OSError:
        return None
    if found is None or not owned(found[0]):
        raise NoAgent
    return _send(found[0], found[1], outgoing, options, profile)


def _send(path: str, agent_identity: str, outgoing: Outgoing, options: dict[str, Any], profile: str | None) -> int | None:
    from iotnotify.agent import forget_route
    from iotnotify.agent.client import Unavailable, send
    from iotnotify.quick.https import exit_code_of, read_message, rejected

    payloads = read_message(options)
    if payloads is None:
        return None  # the CLI says what is wrong with the file
    outgoing.payloads = payloads
    try:
        send(path, agent_identity, outgoing, rejected)
    except Unavailable:
        forget_route(profile)
        raise AgentGone from None
    except BaseException as e:  # ours and Ctrl-C become a line and an exit code; anything else is raised again
        return exit_code_of(e)
    return 0
