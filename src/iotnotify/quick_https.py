"""A plain one-message `send` published over HTTPS without loading click, when no agent serves it;
and what both quick paths (this and agent/quick.py) share: reading the message, saying a rejected
message or a failure on stderr as the CLI does.

The same forms as agent/quick.py reads (TOPIC MESSAGE, -m, -f, -s; -q, -r, --timeout, --failed,
--via, -p), settings from IOTNOTIFY_* variables and the profile (settings.from_environment), and
`send`'s own checks, publishing and errors (send.send over mqtt/https.py): one message costs
Python, awscrt's import, TLS and one request (bench/README.md). Anything else (a flag click reads,
a setting that needs MQTT, a value click would refuse, a file it cannot read, --debug) is left to
the CLI, which decides the same way (via.goes_over_https).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any


def https_send(options: dict[str, Any]) -> int | None:
    """Publish the one message `options` (agent/quick.py's parse) asks for over HTTPS; the exit code,
    or None when the CLI should take it (nothing was read from stdin then)."""
    via = options.get("via") or os.environ.get("IOTNOTIFY_VIA") or "auto"
    if via not in ("auto", "https") or "lines" in options or os.environ.get("IOTNOTIFY_DEBUG") \
            or (via == "auto" and os.environ.get("IOTNOTIFY_PERSIST")):
        return None  # the CLI's: MQTT, --debug, an agent to start
    from iotnotify.crt import warmup

    warmup.start()  # TLS's start-up on another core while the rest is imported
    from iotnotify import errors
    from iotnotify.settings import from_environment
    from iotnotify.via import goes_over_https

    profile = options.get("profile") or os.environ.get("IOTNOTIFY_PROFILE") or None
    try:
        settings = from_environment(profile)
    except (ValueError, errors.IotNotifyError):
        return None  # the CLI reads it again and says what is wrong
    if settings.persist or not goes_over_https(via, [b""], False, 1, None, None, settings.client_id,
                                               settings.protocol):
        return None  # MQTT's to do (persist: an agent to start)
    payloads = read_message(options)
    if payloads is None:
        return None
    from iotnotify.interrupts import interrupt_on_signals

    interrupt_on_signals()
    try:
        _send(settings, via, options, payloads)
    except BaseException as e:  # ours and Ctrl-C become a line and an exit code; anything else is raised again
        return exit_code_of(e)
    return 0


def _send(settings: Any, via: str, options: dict[str, Any], payloads: list[bytes]) -> None:
    from dataclasses import replace
    from pathlib import Path

    from iotnotify.keys import source_for
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.send import send

    def warn(message: str) -> None:
        from iotnotify.shown import LINE, shown

        sys.stderr.write(f"iotnotify: warning: {shown(message, LINE)}\n")

    connect = replace(ConnectOptions.from_settings(settings), https=True, https_fallback=via == "auto")
    failed = options.get("failed")
    send(source_for(settings, warn=warn), connect, options["topic"], payloads, options["qos"],
         bool(options.get("retain")), options["timeout"], rejected, Path(failed) if failed else None)


def read_message(options: dict[str, Any]) -> Any:
    """The payloads the options name: [the message] (argument, -m, -f FILE, -f -, -s), or stdin's
    lines as they come (-l); None if a file cannot be read (the CLI says why)."""
    from iotnotify.lines import read_lines

    stdin = sys.stdin.buffer
    try:
        if "file" in options:
            if options["file"] == "-":
                return [stdin.read()]
            with open(options["file"], "rb") as f:  # noqa: PTH123 - pathlib is dear to import on this path
                return [f.read()]
        if "stdin" in options:
            return [stdin.read()]
        if "lines" in options:
            return read_lines(stdin)
        return [os.fsencode(options["message"])]
    except OSError:
        return None


def rejected(position: int, error: object) -> None:
    """A message refused before sending, as the CLI says it (escaped and cut as its notes are)."""
    from iotnotify.shown import LINE, shown

    sys.stderr.write(f"iotnotify: message {position} not sent: {shown(str(error), LINE)}\n")


def exit_code_of(error: BaseException) -> int:
    """Say a failure on stderr as the CLI does (one line) and return its exit code: ours and Ctrl-C;
    anything else is raised again (a bug, with its traceback)."""
    from iotnotify import errors  # imported only when one is raised (errors.py imports enum)

    if isinstance(error, KeyboardInterrupt):
        sys.stderr.write("iotnotify: interrupted\n")
        return int(errors.ExitStatus.INTERRUPTED)
    if not isinstance(error, errors.IotNotifyError):
        raise error
    sys.stderr.write(f"iotnotify: {errors.one_line(error)}\n")
    return int(error.exit_code)
