"""The quick path's way over HTTPS: one message published without loading click when no agent
serves it (send.send over mqtt/https.py, with `send`'s own checks and errors): one message costs
Python, awscrt's import, TLS and one request (bench/README.md); or over MQTT, the way after it,
once the message was read. And what the quick path's ways share: reading the message, saying a
rejected message or a failure on stderr as the CLI does.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from typing import Any

    from iotnotify.keys import KeySource
    from iotnotify.outgoing import Outgoing
    from iotnotify.settings import Settings


def publish(outgoing: Outgoing, settings: Settings, source: KeySource, https: bool = True,
            fallback: bool = False) -> int:
    """Publish what `outgoing` holds over HTTPS (or over MQTT: the way after it); the exit code.
    With `fallback`, a broker that takes no HTTPS publish raises HttpsUnsupported: nothing was
    delivered, the route goes on."""
    from iotnotify.errors import HttpsUnsupported
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.send import send

    try:
        send(source, ConnectOptions.from_settings(settings, https=https), outgoing, rejected, fallback=fallback)
    except BaseException as e:  # ours and Ctrl-C become a line and an exit code; anything else is raised again
        if fallback and isinstance(e, HttpsUnsupported):
            raise
        return exit_code_of(e)
    return 0


def key_source(settings: Settings) -> KeySource:
    """The settings' key source, its warnings (a key cache it cannot trust) said as the CLI says them."""
    from iotnotify.keys import source_for

    def warn(message: str) -> None:
        from iotnotify.shown import LINE, shown

        sys.stderr.write(f"iotnotify: warning: {shown(message, LINE)}\n")

    return source_for(settings, warn=warn)


def read_message(options: dict[str, Any]) -> Any:
    """The payloads the options name: [the message] (argument, -m, -f FILE, -f -, -s), or stdin's
    lines as they come (-l); None if a file cannot be read (the CLI says why)."""
    from iotnotify.payloads import read_lines

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
