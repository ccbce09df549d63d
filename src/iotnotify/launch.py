"""The `iotnotify` process: a plain `send` a running agent can take goes to it without loading the
CLI (click costs more than the rest of such a send), as does one message over HTTPS (quick/); all
else to the CLI (`cli.main(argv)`, which returns the exit code), with awscrt's
TLS start-up under way on another core for the commands that connect (crt/warmup.py). What belongs
to the process is here: its signal handling, its hook for errors in awscrt's callbacks, its exit."""

from __future__ import annotations

import sys

# `signal` is `_signal` wrapped in enums, which a send through the agent does without (bench/README.md,
# "The quick paths' last imports"): the functions here take and give plain numbers, all this needs.
# Type checkers have no stub for it: they read signal's, the same functions.
TYPE_CHECKING = False  # not typing's: a send through the agent imports neither typing nor enum
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal


def main() -> None:
    """Run `iotnotify` with sys.argv."""
    interrupt_on_signals()
    try:
        code = _run(sys.argv[1:])
    except KeyboardInterrupt:  # outside a command's own handling (reading stdin for the quick path, the imports)
        sys.stderr.write("iotnotify: interrupted\n")
        _end_now(INTERRUPTED)
    sys.exit(_exit_code(code))


def _exit_code(code: int) -> int:
    """`code`, but 143 for a command SIGTERM interrupted."""
    return TERMINATED if code == INTERRUPTED and _terminated else code


def _run(argv: list[str]) -> int:
    """The quick path if it takes the command, else the CLI; the exit code (or the process ends now)."""
    if "send" in argv[:3]:
        from iotnotify.quick import quick_send

        code = quick_send(argv)
        if code is not None:
            _end_now(code)
    if any(command in argv[:3] for command in ("send", "subscribe", "tail")) and not {"--help", "-h"} & set(argv):
        from iotnotify.crt.warmup import start

        start()  # they connect: TLS's start-up on another core while click and the rest are imported
    from iotnotify.cli import main as cli_main
    from iotnotify.cli.terminal import ends_quickly

    _quiet_callback_errors()
    code = cli_main(argv)
    if ends_quickly():
        _end_now_if_alone(code)
    return code


INTERRUPTED, TERMINATED = 130, 143  # errors.ExitStatus's (errors imports enum: not on the quick path)
_terminated: list[bool] = []  # SIGTERM came: an interrupted command exits 143, as shells expect, not Ctrl-C's 130


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM both stop a command cleanly (KeyboardInterrupt in the main thread), even
    in a background job; after SIGTERM, 130 (interrupted) becomes 143 (`_exit_code`)."""
    def interrupt(signum: int, _frame: object) -> None:
        if signum == _signal.SIGTERM:
            _terminated.append(True)
        raise KeyboardInterrupt

    _signal.signal(_signal.SIGINT, interrupt)
    _signal.signal(_signal.SIGTERM, interrupt)


def _quiet_callback_errors() -> None:
    """An exception raised in a callback on awscrt's threads (the keys source refusing a reconnection
    attempt, say) reaches the command through the session's state; Python would also print it with
    a traceback ("Exception ignored in ..."): nothing for our own errors, one line for a bug."""
    import os
    from typing import Any

    from iotnotify import errors
    from iotnotify.shown import shown

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, errors.IotNotifyError):
            return
        if os.environ.get("IOTNOTIFY_DEBUG"):
            sys.__unraisablehook__(unraisable)
            return
        error = unraisable.exc_value
        sys.stderr.write(f"iotnotify: internal error in a callback: {type(error).__name__}: {shown(str(error))}\n")

    sys.unraisablehook = hook


def _end_now_if_alone(code: int) -> None:
    """End at once (terminal.end_quickly), unless a thread of ours still runs (then as usual, which
    waits for it)."""
    import threading

    if threading.active_count() == 1:
        _end_now(code)


def _end_now(code: int) -> None:
    """End at once, output flushed: the interpreter's finalization tears down awscrt's native
    objects and threads after an HTTPS send, for nothing (cli/terminal.end_quickly)."""
    import os

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from iotnotify.cli.terminal import quiet_stdout

        quiet_stdout()
    sys.stderr.flush()
    os._exit(_exit_code(code))
