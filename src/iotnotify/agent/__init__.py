"""The send agent: one connection kept open and lent to other processes' `send`, as ssh's
ControlMaster lends one SSH connection. `server.py` is the agent, `client.py` the side `send` runs
(quick/agent.py enters it without click), `wire.py` the frames between them, `spawn.py` starting one
in the background.

Where an agent's socket lives, which agent serves which settings, and the routes that let a plain
`send` find its agent without resolving settings are here. The client side imports this module on
every `send`, so it imports nothing heavy (no pathlib, dataclasses, typing: each is a good part of
a plain send through an agent on a small machine, bench/README.md).
"""

from __future__ import annotations

import os
import stat
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from iotnotify.settings import Settings

IDENTITY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "AWS_PROFILE",
                "XDG_CACHE_HOME")
"""Variables that change the connection too (the proxy, boto3's profile, which key cache)."""


def identity(settings: Settings, env: Mapping[str, str] = os.environ) -> str:
    """The settings an agent serves (those that decide which broker, as whom and how its connection
    is made: settings.IDENTITY_FIELDS), as one canonical text (it holds login tokens: compared,
    never shown). A `send` uses an agent whose settings agree on all of them."""
    import json

    from iotnotify.settings import IDENTITY_FIELDS

    fields = {name: getattr(settings, name) for name in IDENTITY_FIELDS}
    fields["env"] = {name: env[name] for name in IDENTITY_ENV if env.get(name)}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def runtime_dir(env: Mapping[str, str] = os.environ, create: bool = False) -> str:
    """The user's folder for agent sockets: $XDG_RUNTIME_DIR/iotnotify, else /tmp/iotnotify-UID (as
    tmux's), mode 0700; one another user owns or others may enter is refused (OSError)."""
    base = env.get("XDG_RUNTIME_DIR")
    folder = os.path.join(base, "iotnotify") if base else os.path.join(env.get("TMPDIR") or "/tmp",  # noqa: S108
                                                                        f"iotnotify-{os.geteuid()}")
    if create:
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return folder
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user's (owner uid {info.st_uid}, "
                      f"mode {stat.S_IMODE(info.st_mode):o}): no agent socket is used there")
    return folder


def socket_path(agent_identity: str, env: Mapping[str, str] = os.environ) -> str:
    """Where the agent for these settings listens (the name says nothing of them: a checksum)."""
    return os.path.join(runtime_dir(env), f"agent-{zlib.crc32(agent_identity.encode()):08x}.sock")


def sockets(env: Mapping[str, str] = os.environ) -> list[str]:
    """Every agent socket of this user's (running or stale); none when the folder does not exist."""
    try:
        folder = runtime_dir(env)
        return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                      if name.startswith("agent-") and name.endswith(".sock"))
    except OSError:
        return []


def owned(path: str) -> bool:
    """Whether `path` is a socket of this user's (an agent's, running or stale)."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid == os.geteuid()


def _route_path(profile: str | None, env: Mapping[str, str]) -> str:
    """The route file for a command given no setting flags, in this folder, with this profile and
    these variables: what decides its settings, besides the config file (whose state the route holds)."""
    inputs = [profile or "", os.getcwd(), *sorted(f"{k}={v}" for k, v in env.items() if k.startswith("IOTNOTIFY_")),
              *(f"{k}={env.get(k, '')}" for k in (*IDENTITY_ENV, "XDG_CONFIG_HOME", "HOME"))]
    return os.path.join(runtime_dir(env), f"route-{zlib.crc32(chr(0).join(inputs).encode()):08x}")


def _config_state(path: str) -> str:
    try:
        info = os.stat(path)
    except OSError:
        return "-"
    return f"{info.st_mtime_ns} {info.st_size} {info.st_ino}"


def save_route(profile: str | None, config_path: str, agent_identity: str, env: Mapping[str, str] = os.environ) -> None:
    """Remember which agent serves a plain command with `profile` here (its settings resolved from
    the variables and the config file as it is now), for `route` (0600: the identity holds the
    settings' login tokens, if any)."""
    path = _route_path(profile, env)
    text = "\n".join((config_path, _config_state(config_path), socket_path(agent_identity, env), agent_identity))
    temporary = f"{path}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)


def route(profile: str | None, env: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(socket path, identity) of the agent `save_route` found for a plain command with `profile`
    here, if the config file has not changed since; None otherwise."""
    try:
        with open(_route_path(profile, env)) as f:
            config_path, state, path, agent_identity = f.read().split("\n", 3)
    except (OSError, ValueError):
        return None
    return (path, agent_identity) if _config_state(config_path) == state else None


def forget_route(profile: str | None, env: Mapping[str, str] = os.environ) -> None:
    """Drop the route for `profile` here (its agent is gone)."""
    try:
        os.unlink(_route_path(profile, env))
    except OSError:
        pass
