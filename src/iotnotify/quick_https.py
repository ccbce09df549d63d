"""A plain one-message `send` published over HTTPS without loading click, when no agent serves it.

The same forms as agent/quick.py reads (TOPIC MESSAGE, -m, -f, -s; -q, -r, --timeout, --failed,
--via, -p), settings from IOTNOTIFY_* variables and the profile (settings.from_environment), and
`send`'s own checks, publishing and errors (send.send over mqtt/https.py): one message costs
Python, awscrt's import, TLS and one request (bench/README.md). Anything else (a flag click reads,
a setting that needs MQTT, a value click would refuse, --debug) is left to the CLI, which decides
the same way (send.goes_over_https).
"""

from __future__ import annotations

import os
import sys
from typing import Any


def https_send(options: dict[str, Any]) -> int | None:
    """Publish the one message `options` (agent/quick.py's parse) asks for over HTTPS; the exit code,
    or None when the CLI should take it (nothing was read from stdin then)."""
    via = options.get("via") or os.environ.get("IOTNOTIFY_VIA") or "auto"
    if via not in ("auto", "https") or "lines" in options or os.environ.get("IOTNOTIFY_DEBUG") \
            or (via == "auto" and os.environ.get("IOTNOTIFY_PERSIST")):
        return None  # the CLI's: MQTT, --debug, an agent to start
    from iotnotify import errors
    from iotnotify.settings import Protocol, from_environment

    profile = options.get("profile") or os.environ.get("IOTNOTIFY_PROFILE") or None
    try:
        settings = from_environment(profile)
    except (ValueError, errors.IotNotifyError):
        return None  # the CLI reads it again and says what is wrong
    if settings.client_id or settings.protocol != Protocol.V5 or settings.persist:
        return None  # MQTT's to do (persist: an agent to start)
    from iotnotify.interrupts import interrupt_on_signals

    interrupt_on_signals()
    try:
        _send(settings, options)
    except KeyboardInterrupt:
        sys.stderr.write("iotnotify: interrupted\n")
        return int(errors.ExitStatus.INTERRUPTED)
    except errors.IotNotifyError as e:
        prefix = "" if isinstance(e, errors.Interrupted) else "error: "
        sys.stderr.write(f"iotnotify: {prefix}{' '.join(str(e).split())}\n")
        return int(e.exit_code)
    return 0


def _send(settings: Any, options: dict[str, Any]) -> None:
    from dataclasses import replace
    from pathlib import Path

    from iotnotify.errors import UsageError
    from iotnotify.keys import source_for
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.send import send

    stdin = sys.stdin.buffer
    try:
        if "file" in options:
            if options["file"] == "-":
                payload = stdin.read()
            else:
                with open(options["file"], "rb") as f:  # noqa: PTH123 - pathlib costs this path 8 ms
                    payload = f.read()
        elif "stdin" in options:
            payload = stdin.read()
        else:
            payload = os.fsencode(options["message"])
    except OSError as e:
        raise UsageError(f"cannot read {options.get('file', 'stdin')}: {e.strerror}") from None

    def rejected(position: int, error: Exception) -> None:
        sys.stderr.write(f"iotnotify: message {position} not sent: {error}\n")

    def warn(message: str) -> None:
        sys.stderr.write(f"iotnotify: warning: {message}\n")

    source = source_for(settings, warn=warn)
    auto = (options.get("via") or os.environ.get("IOTNOTIFY_VIA") or "auto") == "auto"
    connect = replace(ConnectOptions.from_settings(settings), https=True, https_fallback=auto)
    failed = options.get("failed")
    send(source, connect, options["topic"], [payload], options["qos"], bool(options.get("retain")),
         options["timeout"], rejected, Path(failed) if failed else None)
