"""The forms of `send` the quick path reads (quick/__init__.py), without click.

    iotnotify [-p NAME] send [-p NAME] [-q N] [-r] [--timeout S] [--failed FILE] [--via VIA] TOPIC
              (MESSAGE | -m TEXT | -f FILE | -s | -l)

Anything else (another flag, a value click would refuse) is left to the CLI, which reads it all
and says what is wrong. A test holds this reading to click's on any argv (tests/test_quick_argv.py).
"""

from __future__ import annotations

import os

from iotnotify.outgoing import VIAS

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any

    from iotnotify.outgoing import Outgoing

NAMES = {"profile": ("--profile", "-p"), "message": ("--message", "-m"), "qos": ("--qos", "-q"),
         "file": ("--file", "-f"), "timeout": ("--timeout",), "failed": ("--failed",), "via": ("--via",),
         "retain": ("--retain", "-r"), "stdin": ("--stdin", "-s"), "lines": ("--lines", "-l")}
"""The options read here, by name: click declares them with these very names (cli/client.py's
send, cli/options.py's --qos and --profile), so the two readings cannot drift apart."""

SWITCHES = ("retain", "stdin", "lines")  # flags; the rest take a value
VALUED = {flag: name for name, flags in NAMES.items() if name not in (*SWITCHES, "profile") for flag in flags}
FLAGS = {flag: name for name in SWITCHES for flag in NAMES[name]}
MAX_SECONDS = 365 * 24 * 3600.0  # times.MAX_SECONDS, which click's Seconds takes at most (times imports datetime)


def parse(argv: list[str]) -> tuple[Outgoing, dict[str, Any]] | None:
    """The send `argv` asks for (its messages not read yet), and the options it was given (the
    message's source, --via, the profile); None if it is not one of the plain forms."""
    args = list(argv)
    options: dict[str, Any] = {}
    while args and args[0] != "send":  # before the command: only the profile
        name, equals, value = _split(args.pop(0))
        if name not in NAMES["profile"] or "profile" in options or not (equals or args):
            return None
        options["profile"] = value if equals else args.pop(0)
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
        name, equals, value = _split(arg)
        if name in FLAGS and not equals:
            options[FLAGS[name]] = True
        elif name in VALUED and (equals or args) and VALUED[name] not in options:
            options[VALUED[name]] = value if equals else args.pop(0)
        elif name in NAMES["profile"] and (equals or args) and "profile" not in options:  # the group's, after send
            options["profile"] = value if equals else args.pop(0)
        else:
            return None
    checked = _checked(options, positional)
    if checked is None:
        return None
    from iotnotify.outgoing import Outgoing

    return Outgoing(checked["topic"], (), checked["qos"], bool(checked.get("retain")), checked["timeout"],
                    checked.get("failed"), single="lines" not in checked), checked


def _split(arg: str) -> tuple[str, str, str]:
    """An option's name, "=" and its value given in the same word (--timeout=5); click reads a short
    option's "=" as part of its value (-q=1 is "=1"), so for those, the whole word is the name."""
    return arg.partition("=") if arg.startswith("--") else (arg, "", "")


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
    if options["qos"] not in (0, 1) or not 0 <= options["timeout"] <= MAX_SECONDS or not options.get("profile", "-") \
            or options.get("via", "auto") not in VIAS or ("failed" in options and not _file_for_failed(options["failed"])):
        return None  # an empty profile: click's is "", which no config file has
    return options


def _file_for_failed(path: str) -> bool:
    """Whether --failed `path` is taken (click's Path(dir_okay=False, writable=True) refuses a folder
    and a file that cannot be written, send an empty name); os.path, as pathlib is dear here."""
    if not path or os.path.isdir(path):  # noqa: PTH112
        return False
    return not os.path.exists(path) or os.access(path, os.W_OK)  # noqa: PTH110
