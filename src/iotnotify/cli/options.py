"""The options commands share, as decorators with public names (as sqlite-utils' `output_options`
and httpie's `cli/options.py`), and resolving them, with the group's, into Settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from iotnotify.cli.terminal import note
from iotnotify.settings import DEFAULT_RECONNECT_DELAY, DEFAULT_SESSION_EXPIRY, Settings, resolve

if TYPE_CHECKING:
    from iotnotify.keys import KeySource

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""The context settings of the group and of every command."""

AWS_OPTIONS = [
    click.option("--aws", is_flag=True, default=None,
                 help="No keys endpoint: use your AWS credentials (boto3's chain) [env IOTNOTIFY_AWS=1]."),
    click.option("--aws-profile", metavar="NAME", help="AWS profile for --aws (implies --aws) [env IOTNOTIFY_AWS_PROFILE]."),
    click.option("--aws-role", metavar="ROLE",
                 help="With --aws: assume this notifications role with the endpoint's session policy "
                      "[env IOTNOTIFY_AWS_ROLE]."),
]


def connection_options(command: F) -> F:
    """Flags every command that needs keys takes (they override the same flags before the command)."""
    for decorator in reversed([
        click.option("--endpoint", metavar="URL", help="Keys endpoint URL [env IOTNOTIFY_ENDPOINT]."),
        click.option("--ca-file", metavar="PATH", help="CA bundle for a private broker [env IOTNOTIFY_CA_FILE]."),
        click.option("--no-cache", is_flag=True, default=None, help="Fetch new keys; do not use or save the cache."),
        *AWS_OPTIONS,
    ]):
        command = decorator(command)
    return command


def mqtt_options(command: F) -> F:
    """Flags of the commands that connect to the broker."""
    for decorator in reversed([
        click.option("--protocol", type=click.Choice(["5", "3.1.1"]), default=None,
                     help="MQTT version (default 5) [env IOTNOTIFY_PROTOCOL]."),
        click.option("--client-id", "-i", metavar="ID",
                     help="MQTT client id (default: the keys' clientId plus -RANDOM, else random iotnotify-...) [env IOTNOTIFY_CLIENT_ID]."),
        click.option("--qos", "-q", type=click.IntRange(0, 1), default=1, show_default=True,
                     help="Quality of service: 0 at most once, 1 at least once."),
    ]):
        command = decorator(command)
    return command


class DelayRange(click.ParamType[tuple[float, float], Any]):
    """MIN,MAX seconds, 0 < MIN <= MAX."""

    name = "MIN,MAX"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        try:
            low, high = (float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not MIN,MAX in seconds", param, ctx)
        if not 0 < low <= high:
            self.fail(f"{value!r}: need 0 < MIN <= MAX", param, ctx)
        return low, high


def long_running_options(command: F) -> F:
    """Flags of the commands that stay connected: persistent sessions and reconnection delays."""
    for decorator in reversed([
        click.option("--session", metavar="NAME",
                     help="Persistent session NAME (also the client id): QoS 1 messages sent while you "
                          "were away are delivered when you come back."),
        click.option("--session-expiry", type=click.IntRange(60, 7 * 24 * 3600), default=DEFAULT_SESSION_EXPIRY,
                     show_default=True,
                     metavar="S", help="Seconds the broker keeps the --session while you are away."),
        click.option("--reconnect-delay", type=DelayRange(), default=",".join(f"{s:g}" for s in DEFAULT_RECONNECT_DELAY),
                     show_default=True,
                     help="Seconds to wait before reconnecting: MIN, doubled with jitter per failed attempt, "
                          "up to MAX."),
        click.option("--partial", is_flag=True,
                     help="Go on with the filters the broker granted when it refuses some (each refusal on stderr)."),
    ]):
        command = decorator(command)
    return command


def resolve_settings(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings: this command's flags, then the group's, then env, then the profile."""
    group = ctx.find_root().params
    merged = {name: flags.get(name) if flags.get(name) not in (None, False) else group.get(name)
              for name in ("endpoint", "ca_file", "no_cache", "protocol", "client_id", "aws", "aws_profile",
                           "aws_role")}
    merged["keys_timeout"] = group.get("keys_timeout")
    return resolve(merged, profile=group.get("profile"))


def source_of(settings: Settings) -> KeySource:
    """The key source the settings ask for; a key cache it cannot trust is said on stderr."""
    from iotnotify.keys import source_for

    return source_for(settings, warn=lambda message: note(f"iotnotify: warning: {message}"))
