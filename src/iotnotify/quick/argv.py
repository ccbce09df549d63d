"""The forms of `send` the quick path reads (quick/__init__.py), without click.

    iotnotify [-p NAME] send [-q N] [-r] [--timeout S] [--failed FILE] [--via VIA] TOPIC
              (MESSAGE | -m TEXT | -f FILE | -s | -l)

Anything else (another flag, a value click would refuse) is left to the CLI, which reads it all
and says what is wrong. A test holds this reading to click's on any argv (tests/test_quick_argv.py).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any

    from iotnotify.outgoing import Outgoing

VALUED = {"-m": "message", "--message": "message", "-q": "qos", "--qos": "qos", "-f": "file", "--file": "file",
          "--timeout": "timeout", "--failed": "failed", "--via": "via"}
FLAGS = {"-r": "retain", "--retain": "retain", "-s": "stdin", "--stdin": "stdin", "-l": "lines", "--lines": "lines"}


def parse(argv: list[str]) -> tuple[Outgoing, dict[str, Any]] | None:
    """The send `argv` asks for (its messages not read yet), and the options it was given (the
    message's source, --via, the profile); None if it is not one of the plain forms."""
    args = list(argv)
    options: dict[str, Any] = {}
    while args and args[0] != "send":  # before the command: only the profile
        name, _, value = args.pop(0).partition("=")
        if name not in ("-p", "--profile") or (not value and not args):
            return None
        options["profile"] = value or args.pop(0)
    if not args:
        return None
    args.pop(0)
    positional: list[str] = []
    while args:
        arg = args.pop(0)
        if arg == "--":
            positional += args
            break
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
            continue
        name, equals, value = arg.partition("=")
        if name in FLAGS and not equals:
            options[FLAGS[name]] = True
        elif name in VALUED and (equals or args) and VALUED[name] not in options:
            options[VALUED[name]] = value if equals else args.pop(0)
        else:
            return None
    checked = _checked(options, positional)
    if checked is None:
        return None
    from iotnotify.outgoing import Outgoing

    return Outgoing(checked["topic"], (), checked["qos"], bool(checked.get("retain")), checked["timeout"],
                    checked.get("failed"), single="lines" not in checked), checked


def _checked(options: dict[str, Any], positional: list[str]) -> dict[str, Any] | None:
    """`options` with the topic and message, if they make a valid send; else None (click will say why)."""
    if not 1 <= len(positional) <= 2 or positional[0].startswith("-"):
        return None
    options["topic"] = positional[0]
    if len(positional) == 2:
        if "message" in options:
            return None
        options["message"] = positional[1]
    if options.get("message") == "-":
        del options["message"]
        options["stdin"] = True
    if sum(key in options for key in ("message", "file", "stdin", "lines")) != 1:
        return None
    try:
        options["qos"] = int(options.get("qos", 1))
        options["timeout"] = float(options.get("timeout", 30.0))
    except ValueError:
        return None
    if options["qos"] not in (0, 1) or not 0 <= options["timeout"] < float("inf"):
        return None
    return options
