"""The `iotnotify` command: the group, shared flags, and `main(argv)`, which maps errors to exit codes.

The commands live in client.py (keys, send, subscribe), tail.py, rpc.py (request, respond), agent.py
(agent start|stop|status) and admin.py (local, setup-role, setup-cognito, deploy-template),
each imported only when one of its commands runs (COMMANDS); the options they share are in
options.py, what they say on stderr in terminal.py.
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
            "local": "admin:local_command", "setup-role": "admin:setup_role_command",
            "setup-cognito": "admin:setup_cognito_command", "deploy-template": "admin:deploy_template_command",
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
        return super().parse_args(ctx, self._hoisted(ctx, args))

    def _hoisted(self, ctx: click.Context, args: list[str]) -> list[str]:
        """`args` with the group's options given after the command (`send --profile local ...`)
        moved before it, as the aws CLI takes its global options anywhere: those the command (and,
        for a group such as `retained`, its subcommand) does not declare itself, up to `--`. An
        eager option (--version) is not moved; one whose value is missing is refused here."""
        ours = {name: option for option in self.params if isinstance(option, click.Option) and not option.is_eager
                for name in (*option.opts, *option.secondary_opts)}
        at = _command_at(args, ours)
        if at is None:
            return args
        declared = _declared(self.get_command(ctx, args[at]), args[at + 1:], ctx, ours)
        after: list[str] = []
        moved: list[str] = []
        i = at + 1
        while i < len(args):
            word = args[i]
            i += 1
            if word == "--":
                after += args[i - 1:]
                break
            name = word.partition("=")[0] if word.startswith("--") else word
            short = word[:2] if not word.startswith("--") and len(word) > 2 else None  # -pNAME: option and value
            if name in declared or short in declared or not word.startswith("-"):
                after.append(word)
                if declared.get(name) is not None and "=" not in word and i < len(args):
                    after.append(args[i])  # the command's option's value, whatever it looks like
                    i += 1
                continue
            option = ours.get(name) or ours.get(short or "")
            valued = option is not None and name in ours and not option.is_flag and "=" not in word
            if option is None:
                after.append(word)
                continue
            if valued and i == len(args):  # as click says it before the command (after it, it knows no --profile)
                if ctx.resilient_parsing:  # shell completion: the value is what is being completed
                    after.append(word)
                    break
                raise click.BadOptionUsage(word, f"Option '{word}' requires an argument.", ctx)
            moved.append(word)
            if valued:
                moved.append(args[i])
                i += 1
        return [*args[:at], *moved, args[at], *after]


def _valued(option: click.Parameter) -> bool:
    return isinstance(option, click.Option) and not option.is_flag and not option.count


def _command_at(args: list[str], ours: dict[str, click.Option]) -> int | None:
    """Where the command's name is in `args` (the first word that is neither one of the group's
    options nor its value), if anywhere."""
    words = iter(enumerate(args))
    for at, word in words:
        option = ours.get(word)
        if option is not None:
            if _valued(option):
                next(words, None)
            continue
        if not word.startswith("-"):
            return at
        if word == "--":
            return None
    return None


def _declared(command: click.Command | None, args: list[str], ctx: click.Context,
              ours: dict[str, click.Option]) -> dict[str, click.Option | None]:
    """The option names `command` declares, each with its option if it takes a value (else None),
    and for a group its subcommand's too (named by the first word of `args` that is no option nor
    an option's value, the group's own or ours)."""
    if command is None:
        return {}
    names: dict[str, click.Option | None] = {
        name: param if isinstance(param, click.Option) and _valued(param) else None
        for param in command.params for name in (*param.opts, *param.secondary_opts)}
    if isinstance(command, click.Group):
        at = _command_at(args, {**ours, **{n: o for n, o in names.items() if o is not None}})
        sub = command.get_command(ctx, args[at]) if at is not None else None
        names |= _declared(sub, [], ctx, ours)
    return names


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
