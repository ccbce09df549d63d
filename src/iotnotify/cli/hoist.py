"""The group's options anywhere in the command line, as the aws CLI takes its global options:
`iotnotify send --profile local ...` is `iotnotify --profile local send ...`. LazyGroup hands its
arguments through `hoisted` before click parses them."""

from __future__ import annotations

import click


def hoisted(group: click.Group, ctx: click.Context, args: list[str]) -> list[str]:
    """`args` with the group's options given after the command (`send --profile local ...`)
    moved before it, as the aws CLI takes its global options anywhere: those the command (and,
    for a group such as `retained`, its subcommand) does not declare itself, up to `--`. An
    eager option (--version) is not moved; one whose value is missing is refused here."""
    ours = {name: option for option in group.params if isinstance(option, click.Option) and not option.is_eager
            for name in (*option.opts, *option.secondary_opts)}
    at = _command_at(args, ours)
    if at is None:
        return args
    declared = _declared(group.get_command(ctx, args[at]), args[at + 1:], ctx, ours)
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
