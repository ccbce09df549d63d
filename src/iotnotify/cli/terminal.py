"""What the commands say to people on the terminal, besides their data on stdout."""

from __future__ import annotations

import os
import sys

import click

from iotnotify.shown import LINE, shown


def note(message: str, quiet: bool = False) -> None:
    """A status line for people on stderr (never on stdout, which belongs to the data), one line
    whatever a peer put in it: control and bidi characters escaped, cut (shown.py)."""
    if not quiet:
        click.echo(shown(message, LINE), err=True)


def quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


class _Exit:
    """Whether the command asked to end its process without the interpreter's finalization."""

    quick = False


def end_quickly() -> None:
    """Let main() end this process with os._exit once the command returned: for `send`, whose
    connections are closed (DISCONNECT sent, awscrt's client stopped) before it returns, the
    interpreter's finalization (awscrt's native threads and objects torn down) cost 40-50 ms of a
    0.35 s cold send (bench/README.md)."""
    _Exit.quick = True


def ends_quickly() -> bool:
    """Whether end_quickly() was called."""
    return _Exit.quick
