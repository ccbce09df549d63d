"""The `iotnotify` command: the group, shared flags, and `main(argv)`, which maps errors to exit codes.

The commands live in client.py (keys, send, subscribe), tail.py, rpc.py (request, respond), on.py,
ping.py, trust.py (keygen), wait.py, watch.py, presence.py, agent.py (agent start|stop|status) and
admin.py (local, setup-role, setup-cognito, setup-rule, deploy-template), each imported only when
one of its commands runs (COMMANDS); the options they share are in options.py, what they say on
stderr in terminal.py; hoist.py lets the group's options come after the command too.
"""

from __future__ import annotations

import os
from typing import Any

import click

from iotnotify import __version__, errors
from iotnotify.cli.options import CONTEXT, group_options
from iotnotify.cli.terminal import quiet_stdout
from iotnotify.shown import LINE, shown

COMMANDS = {"keys": "client:keys_command", "send": "client:send_command", "subscribe": "client:subscribe_command",
            "tail": "tail:tail_command", "request": "rpc:request_command", "respond": "rpc:respond_command",
            "on": "on:on_command", "ping": "ping:ping_command", "keygen": "trust:keygen_command",
            "wait": "wait:wait_command", "watch": "watch:watch_command",
            "presence": "presence:presence_command",
            "local": "admin:local_command", "setup-role": "admin:setup_role_command",
            "setup-cognito": "admin:setup_cognito_command",
            "setup-rule": "admin:setup_rule_command", "deploy-template": "admin:deploy_template_command",
            "completion": "completion:completion_command", "retained": "retained:retained_group",
            "agent": "agent:agent_group"}
"""Each command, and the module of this package and the click command object that are it, imported
when the command is used: `send` does not pay for `tail` or `local` (click's documentation, "Lazily
Loading Subcommands")."""


class LazyGroup(click.Group):
    """A group whose commands are imported when used (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        import importlib

        module, name = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"iotnotify.cli.{module}"), name)
        return command if isinstance(command, click.Command) else None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from iotnotify.cli.hoist import hoisted

        return super().parse_args(ctx, hoisted(self, ctx, args))


@click.group(cls=LazyGroup, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify local                                  # start a broker and keys endpoint on loopback
  iotnotify --profile local subscribe 'demo/#' -v  # in another terminal
  iotnotify --profile local send demo/hello 'hi'
  iotnotify --endpoint https://ID.execute-api.REGION.amazonaws.com/iot/keys keys
  iotnotify send --aws alerts/disk 'full'          # your AWS credentials, no keys endpoint (the aws extra)""")
@click.version_option(__version__, "--version", "-V", prog_name="iotnotify")
@group_options
def cli(**_flags: Any) -> None:
    """Real-time notifications over AWS IoT Core (MQTT over WebSocket, SigV4) from the command line.

    Each setting comes from its option (after the command, or before it), then its IOTNOTIFY_*
    environment variable, then the profile (in IOTNOTIFY_CONFIG or config.toml in the user's config
    folder; `default` unless --profile names another).
    """


def main(argv: list[str] | None = None) -> int:
    """Run the command `argv` (default: the process's arguments) in this process; turn every
    failure into one line on stderr and return the exit code. It leaves nothing behind: no exit,
    no signal handler, no hook (the process's part is launch.py's), so tests drive it in-process."""
    try:
        code = cli.main(argv, prog_name="iotnotify", standalone_mode=False)
    except errors.IotNotifyError as e:
        click.echo(f"iotnotify: {errors.one_line(e)}", err=True)
        code = e.exit_code
    except click.exceptions.Abort:
        click.echo("iotnotify: interrupted", err=True)
        code = errors.ExitStatus.INTERRUPTED
    except click.UsageError as e:  # click's own (an unknown flag, a bad value): one line too, as ours
        where = e.ctx.command_path if e.ctx is not None else "iotnotify"
        click.echo(f"iotnotify: error: {shown(e.format_message(), LINE)} (see {where} --help)", err=True)
        code = e.exit_code
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except BrokenPipeError:
        quiet_stdout()
        code = errors.ExitStatus.OK
    except Exception as e:
        if os.environ.get("IOTNOTIFY_DEBUG"):
            raise
        click.echo(f"iotnotify: internal error: {type(e).__name__}: {shown(str(e))} (IOTNOTIFY_DEBUG=1 shows more)",
                   err=True)
        code = errors.ExitStatus.INTERNAL
    return int(code or 0)
