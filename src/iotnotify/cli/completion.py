"""`completion`: the shell's completion script (click's own; what it completes beyond commands and
flags is in completers.py)."""

from __future__ import annotations

import click

from iotnotify.cli.options import CONTEXT

SHELLS = ("bash", "zsh", "fish")


@click.command("completion", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify completion bash > ~/.local/share/bash-completion/completions/iotnotify
  iotnotify completion zsh > "${fpath[1]}/_iotnotify"
  iotnotify completion fish > ~/.config/fish/completions/iotnotify.fish
  eval "$(iotnotify completion bash)"              # this shell only""")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, /, shell: str) -> None:
    """Print the completion script for SHELL: commands, flags, profile names, topics."""
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    if complete is None:  # click knows the three SHELLS
        raise click.UsageError(f"no completion for {shell}")
    click.echo(complete(ctx.find_root().command, {}, "iotnotify", "_IOTNOTIFY_COMPLETE").source())
