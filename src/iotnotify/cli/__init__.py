"""The `iotnotify` command: the group, shared flags, and `main`, which maps errors to exit codes.

The commands live in client.py (keys, send, subscribe), tail.py and admin.py (local, setup-role),
each imported only when one of its commands runs (COMMANDS).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from iotnotify import __version__, errors
from iotnotify.settings import Settings, resolve

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


_AWS_FLAGS = [
    click.option("--aws", is_flag=True, default=None,
                 help="No keys endpoint: use your AWS credentials (boto3's chain) [env IOTNOTIFY_AWS=1]."),
    click.option("--aws-profile", metavar="NAME", help="AWS profile for --aws (implies --aws) [env IOTNOTIFY_AWS_PROFILE]."),
    click.option("--aws-role", metavar="ROLE",
                 help="With --aws: assume this notifications role with the endpoint's session policy "
                      "[env IOTNOTIFY_AWS_ROLE]."),
]


def _connection_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Flags every command that needs keys takes (they override the same flags before the command)."""
    for decorator in reversed([
        click.option("--endpoint", metavar="URL", help="Keys endpoint URL [env IOTNOTIFY_ENDPOINT]."),
        click.option("--ca-file", metavar="PATH", help="CA bundle for a private broker [env IOTNOTIFY_CA_FILE]."),
        click.option("--no-cache", is_flag=True, default=None, help="Fetch new keys; do not use or save the cache."),
        *_AWS_FLAGS,
    ]):
        command = decorator(command)
    return command


def _mqtt_flags(command: Callable[..., Any]) -> Callable[..., Any]:
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


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings: this command's flags, then the group's, then env, then the profile."""
    group = ctx.find_root().params
    merged = {name: flags.get(name) if flags.get(name) not in (None, False) else group.get(name)
              for name in ("endpoint", "ca_file", "no_cache", "protocol", "client_id", "aws", "aws_profile",
                           "aws_role")}
    merged["keys_timeout"] = group.get("keys_timeout")
    return resolve(merged, profile=group.get("profile"))


def _source(settings: Settings):  # type: ignore[no-untyped-def]
    from iotnotify.keys import key_source

    return key_source(settings.endpoint, settings.keys_timeout, use_cache=not settings.no_cache, aws=settings.aws,
                      aws_profile=settings.aws_profile, aws_role=settings.aws_role,
                      warn=lambda message: _note(f"iotnotify: warning: {message}"))


def _options(settings: Settings, flags: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    """ConnectOptions from the settings and, for long-running commands, their --session and
    --reconnect-delay flags."""
    from iotnotify.connection import ConnectOptions

    flags = flags or {}
    delays = flags.get("reconnect_delay") or (1.0, 30.0)
    return ConnectOptions(protocol=settings.protocol, client_id=settings.client_id, ca_file=settings.ca_file,
                          session=flags.get("session"), session_expiry=flags.get("session_expiry") or 3600,
                          min_reconnect_delay=delays[0], max_reconnect_delay=delays[1])


class _DelayRange(click.ParamType):
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


def _long_running_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Flags of the commands that stay connected: persistent sessions and reconnection delays."""
    for decorator in reversed([
        click.option("--session", metavar="NAME",
                     help="Persistent session NAME (also the client id): QoS 1 messages sent while you "
                          "were away are delivered when you come back."),
        click.option("--session-expiry", type=click.IntRange(60, 7 * 24 * 3600), default=3600, show_default=True,
                     metavar="S", help="Seconds the broker keeps the --session while you are away."),
        click.option("--reconnect-delay", type=_DelayRange(), default="1,30", show_default=True,
                     help="Seconds to wait before reconnecting: MIN, doubled with jitter per failed attempt, "
                          "up to MAX."),
        click.option("--partial", is_flag=True,
                     help="Go on with the filters the broker granted when it refuses some (each refusal on stderr)."),
    ]):
        command = decorator(command)
    return command


def _note(message: str, quiet: bool = False) -> None:
    """A status line for people on stderr (never on stdout, which belongs to the data)."""
    if not quiet:
        click.echo(message, err=True)


COMMANDS = {"keys": "client", "send": "client", "subscribe": "client", "tail": "tail", "local": "admin",
            "setup-role": "admin"}
"""Each command and the module of this package that defines it, imported when the command is used:
`send` does not pay for `tail` or `local` (the pattern of click's documentation, "Lazily Loading
Subcommands")."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import importlib

            importlib.import_module(f"iotnotify.cli.{COMMANDS[cmd_name]}")  # registers it on `cli`
        return self.commands.get(cmd_name)


@click.group(cls=_LazyGroup, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify local                                  # start a broker and keys endpoint on loopback
  iotnotify --profile local subscribe 'demo/#' -v  # in another terminal
  iotnotify --profile local send demo/hello 'hi'
  iotnotify --endpoint https://ID.execute-api.REGION.amazonaws.com/iot/keys keys""")
@click.version_option(__version__, "--version", "-V", prog_name="iotnotify")
@click.option("--profile", "-p", metavar="NAME", help="Profile in the config file [env IOTNOTIFY_PROFILE].")
@click.option("--endpoint", metavar="URL", help="Keys endpoint URL [env IOTNOTIFY_ENDPOINT].")
@click.option("--ca-file", metavar="PATH", help="CA bundle for a private broker [env IOTNOTIFY_CA_FILE].")
@click.option("--no-cache", is_flag=True, default=None, help="Fetch new keys; do not use or save the cache.")
@click.option("--keys-timeout", type=float, metavar="S",
              help="Seconds to wait for the keys endpoint (default 10) [env IOTNOTIFY_KEYS_TIMEOUT].")
@_AWS_FLAGS[0]
@_AWS_FLAGS[1]
@_AWS_FLAGS[2]
def cli(**_flags: Any) -> None:
    """Real-time notifications over AWS IoT Core (MQTT over WebSocket, SigV4) from the command line.

    Settings come from flags, then IOTNOTIFY_* environment variables, then the profile
    (IOTNOTIFY_CONFIG or config.toml in the app dir; `default` unless --profile names another).
    """


def _quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM both stop a command cleanly (KeyboardInterrupt), even in a background job."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _quiet_callback_errors() -> None:
    """An exception raised in a callback on awscrt's threads (the keys source refusing a reconnection
    attempt, say) reaches the command through the connection's state; Python would also print it
    with a traceback ("Exception ignored in ..."): nothing for our own errors, one line for a bug."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, errors.IotNotifyError):
            return
        if os.environ.get("IOTNOTIFY_DEBUG"):
            sys.__unraisablehook__(unraisable)
            return
        error = unraisable.exc_value
        click.echo(f"iotnotify: internal error in a callback: {type(error).__name__}: {error}", err=True)

    sys.unraisablehook = hook


def main() -> None:
    """Entry point: run the command; turn every failure into one line on stderr and an exit code."""
    _interrupt_on_signals()
    _quiet_callback_errors()
    try:
        code = cli.main(prog_name="iotnotify", standalone_mode=False)
    except errors.IotNotifyError as e:
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # always one line
        click.echo(f"iotnotify: {'' if isinstance(e, errors.Interrupted) else 'error: '}{message}", err=True)
        code = e.exit_code
    except click.exceptions.Abort:
        click.echo("iotnotify: interrupted", err=True)
        code = errors.EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        code = errors.EXIT_OK
    except Exception as e:  # noqa: BLE001 - a bug: one line unless asked for the traceback
        if os.environ.get("IOTNOTIFY_DEBUG"):
            raise
        click.echo(f"iotnotify: internal error: {type(e).__name__}: {e} (IOTNOTIFY_DEBUG=1 shows more)", err=True)
        code = errors.EXIT_INTERNAL
    sys.exit(code or 0)

