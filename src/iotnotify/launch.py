"""The `iotnotify` command's entry point: a plain `send` a running agent can take goes to it without
loading the CLI (click costs more than the rest of such a send: agent/quick.py), as does one
message over HTTPS (quick_https.py); all else to the CLI, with awscrt's TLS start-up under way
on another core for the commands that connect (crt/warmup.py)."""

from __future__ import annotations

import sys


def main() -> None:
    """Run `iotnotify` with sys.argv."""
    argv = sys.argv[1:]
    if "send" in argv[:3]:
        from iotnotify.agent.quick import quick_send

        code = quick_send(argv)
        if code is not None:
            _end_now(code)
    if any(command in argv[:3] for command in ("send", "subscribe", "tail")) and not {"--help", "-h"} & set(argv):
        from iotnotify.crt.warmup import start

        start()  # they connect: TLS's start-up on another core while click and the rest are imported
    from iotnotify.cli import main as cli_main

    cli_main()


def _end_now(code: int) -> None:
    """End at once, output flushed: the interpreter's finalization tears down awscrt's native
    objects and threads after an HTTPS send, 40-50 ms for nothing (cli/terminal.end_quickly)."""
    import os

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.stderr.flush()
    os._exit(code)
