"""What the commands say to people on the terminal, besides their data on stdout."""

from __future__ import annotations

import os
import sys

import click


def note(message: str, quiet: bool = False) -> None:
    """A status line for people on stderr (never on stdout, which belongs to the data)."""
    if not quiet:
        click.echo(message, err=True)


def quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
