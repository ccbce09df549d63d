"""A command's way to an agent: which socket its settings go to, starting an agent for --persist,
the route a plain `send` finds it by later (quick/agent.py), and `send` through it."""

from __future__ import annotations

from collections.abc import Callable

from iotnotify.agent import client, identity, owned, runtime_dir, save_route, socket_path
from iotnotify.errors import ConfigError, IotNotifyError
from iotnotify.outgoing import Outgoing
from iotnotify.settings import Settings, from_environment


class UnsafeFolder(client.Unavailable):
    """The socket folder is not the user's alone: no agent is used (the caller says so, and sends)."""


def locate(settings: Settings, create: bool = False) -> tuple[str, str]:
    """The settings' agent identity and socket path (the folder made if `create`); ConfigError if the
    folder is not the user's alone."""
    agent_identity = identity(settings)
    try:
        runtime_dir(create=create)
        return agent_identity, socket_path(agent_identity)
    except OSError as e:
        raise ConfigError(str(e)) from None


def remember(settings: Settings, agent_identity: str) -> None:
    """Leave a route for a plain `send` here to find this agent without click, if the settings came
    from the variables and the profile alone."""
    try:
        plain = identity(from_environment(settings.profile))
    except (IotNotifyError, ValueError):
        return
    if plain == agent_identity:
        save_route(settings.profile, str(settings.config_path), agent_identity)


def serving(path: str) -> bool:
    """Whether an agent answers at `path`."""
    try:
        client.status(path)
    except client.Unavailable:
        return False
    return True


def send(settings: Settings, outgoing: Outgoing, on_rejected: Callable[[int, str], None], debug: bool = False) -> None:
    """`send` through the agent for `settings`, started first if none runs and they ask to persist
    one; client.Unavailable if no agent takes it (UnsafeFolder if its folder may not be used)."""
    try:
        agent_identity, path = locate(settings, create=settings.persist is not None)
    except ConfigError as e:
        raise UnsafeFolder(str(e)) from None
    if settings.persist is not None and not serving(path):
        from iotnotify.agent.spawn import start_detached

        start_detached(settings, settings.persist, path, debug=debug)
    if not owned(path):
        raise client.Unavailable("no agent")
    remember(settings, agent_identity)
    client.send(path, agent_identity, outgoing, on_rejected)
