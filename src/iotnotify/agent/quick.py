"""A plain `send` handed to a running agent without loading click (which costs more than the rest).

Only the common forms are read here (bench/README.md says what this saves):

    iotnotify [-p NAME] send [-q N] [-r] [--timeout S] [--failed FILE] TOPIC (MESSAGE | -m TEXT | -f FILE | -s | -l)

with settings from IOTNOTIFY_* variables and the profile. Anything else (another flag, a value
click would refuse, no agent for these settings) is left to the CLI, which reads it all and says
what is wrong; nothing is read from stdin before an agent has taken the send.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any

VALUED = {"-m": "message", "--message": "message", "-q": "qos", "--qos": "qos", "-f": "file", "--file": "file",
          "--timeout": "timeout", "--failed": "failed", "--via": "via"}
FLAGS = {"-r": "retain", "--retain": "retain", "-s": "stdin", "--stdin": "stdin", "-l": "lines", "--lines": "lines"}


def parse(argv: list[str]) -> dict[str, Any] | None:
    """The send `argv` asks for, or None if it is not one of the plain forms."""
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
    return _checked(options, positional)


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


def quick_send(argv: list[str]) -> int | None:  # noqa: PLR0911 - a return per way a send can go
    """Send through a running agent as `iotnotify send` would; the exit code, or None when this is
    not a plain send or no agent is known to serve its settings (the CLI then does everything).
    The agent is found by the route a send through the CLI (or `agent start`) left for the same
    profile, variables, folder and config file (agent/__init__.py): no settings resolved here."""
    from iotnotify.agent import owned, route, runtime_dir, sockets

    options = parse(argv)
    if options is None:
        return None
    if options.get("via", os.environ.get("IOTNOTIFY_VIA", "auto")) not in ("auto", "mqtt"):
        return _over_https(options)
    if os.environ.get("IOTNOTIFY_DEBUG") or os.environ.get("IOTNOTIFY_NO_AGENT"):
        return _over_https(options)
    if not sockets():
        try:
            runtime_dir()
        except OSError:
            return None  # a folder that is not private: the CLI warns that it is not used
        return _over_https(options)
    profile = options.get("profile") or os.environ.get("IOTNOTIFY_PROFILE") or None
    try:
        found = route(profile)
    except OSError:
        return None
    if found is None or not owned(found[0]):
        return _over_https(options)
    return _send(found[0], found[1], options, profile)


def _over_https(options: dict[str, Any]) -> int | None:
    """No agent for this send: one message goes over HTTPS from here (quick_https.py), if it can."""
    from iotnotify.quick_https import https_send

    return https_send(options)


def _send(path: str, agent_identity: str, options: dict[str, Any], profile: str | None) -> int | None:
    from iotnotify.agent import forget_route
    from iotnotify.agent.client import Unavailable, send
    from iotnotify.interrupts import interrupt_on_signals
    from iotnotify.quick_https import exit_code_of, read_message, rejected

    payloads = read_message(options)
    if payloads is None:
        return None  # the CLI says what is wrong with the file
    interrupt_on_signals()
    try:
        send(path, agent_identity, options["topic"], payloads, options["qos"], bool(options.get("retain")),
             options["timeout"], rejected, options.get("failed"))
    except Unavailable:  # nothing was handed over: the CLI sends it (what came from stdin, given again)
        forget_route(profile)
        read_stdin = "stdin" in options or options.get("file") == "-"
        return _send_directly(payloads, options) if read_stdin else None
    except BaseException as e:  # ours and Ctrl-C become a line and an exit code; anything else is raised again
        return exit_code_of(e)
    return 0


def _send_directly(payloads: list[bytes], options: dict[str, Any]) -> int:
    """The agent went away before taking the input this process read from stdin: send it through
    the CLI, the input on its stdin."""
    import subprocess

    args = [sys.executable, "-m", "iotnotify"] + (["--profile", options["profile"]] if options.get("profile") else [])
    args += ["send", "--no-agent", "-s", "-q", str(options["qos"]), "--timeout", f"{options['timeout']:g}"]
    args += (["-r"] if options.get("retain") else []) + (["--failed", options["failed"]] if options.get("failed") else [])
    return subprocess.run([*args, "--", options["topic"]], input=payloads[0], check=False).returncode  # noqa: S603

