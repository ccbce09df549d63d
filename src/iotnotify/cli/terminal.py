"""What the commands say to people on the terminal, besides their data on stdout."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from iotnotify.shown import LINE, shown

if TYPE_CHECKING:
    from iotnotify.messages import Message
    from iotnotify.mqtt.transport import State
    from iotnotify.signing import Verifier


def note(message: str, quiet: bool = False) -> None:
    """A status line for people on stderr (never on stdout, which belongs to the data), one line
    whatever a peer put in it: control and bidi characters escaped, cut (shown.py)."""
    if not quiet:
        click.echo(shown(message, LINE), err=True)


def ready_note(quiet: bool) -> None:
    """"subscribed", for a person at a terminal only: in a script's stderr (cron's mail, a CI log) it
    is noise; scripts wait for --ready-file instead."""
    import sys

    note("subscribed", quiet or not sys.stderr.isatty())


def warn(error: Exception) -> None:
    """`iotnotify: warning: ...`: what went wrong, and the command goes on (--partial's refusals)."""
    note(f"iotnotify: warning: {error}")


def warn_text(text: str) -> None:
    """`iotnotify: warning: TEXT` (messages at AWS IoT Core's outbound rate, say)."""
    note(f"iotnotify: warning: {text}")


def warn_reconnecting(error: Exception) -> None:
    """The broker ended a long-running command's connection: why, and that it connects again."""
    note(f"iotnotify: warning: {error}; reconnecting")


def state_notes(quiet: bool) -> Callable[[State, int], None]:
    """What says on stderr, from the MQTT threads, that the connection was lost (attempts 1, 2, 4,
    8... to make it again: under AWS's rules one is made each second for a while) and made again;
    nothing with `quiet`."""
    from iotnotify.mqtt.transport import State

    lost = [False]

    def changed(state: State, attempt: int) -> None:
        if state == State.RECONNECTING and (attempt & (attempt - 1)) == 0:  # 0, or a power of two
            note("iotnotify: connection lost, reconnecting" + (f" (attempt {attempt})" if attempt else ""), quiet)
            lost[0] = True
        elif state == State.CONNECTED and lost[0]:
            note("iotnotify: reconnected", quiet)
            lost[0] = False

    return changed


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
    interpreter's finalization (awscrt's native threads and objects torn down) is a good part of a
    cold send (bench/README.md, "Cold send")."""
    _Exit.quick = True


def ends_quickly() -> bool:
    """Whether end_quickly() was called."""
    return _Exit.quick


def refusal_notes(per_second: float = 1.0, clock: Callable[[], float] = time.monotonic) -> Callable[[Message, str], None]:
    """What says on stderr that --verify refused a message: a line each, at most `per_second`
    (a peer flooding forgeries must not flood the terminal); the next line says how many were
    refused meanwhile without one."""
    from iotnotify.signing import REASONS

    unsaid = [0]
    last = [float("-inf")]

    def say(message: Message, reason: str) -> None:
        now = clock()
        if now - last[0] < 1 / per_second:
            unsaid[0] += 1
            return
        more = f" (and {unsaid[0]} more not said)" if unsaid[0] else ""
        last[0], unsaid[0] = now, 0
        note(f"iotnotify: --verify refused a message on {shown(message.topic)}: {REASONS[reason]}{more}")

    return say


def refused_note(verifier: Verifier | None) -> None:
    """At the end of a command with --verify: how many messages it refused, and why."""
    if verifier is not None and verifier.refused:
        note(f"iotnotify: {verifier.summary()}")


def duplicate_note(message: Message, given: str) -> None:
    """One line on stderr for a duplicate --dedupe dropped (with -v)."""
    note(f"iotnotify: dropped a duplicate on {shown(message.topic)} (iotnotify-id {shown(given, 80)})")


def left_waiting(waiting: int, what: str, not_done: str, session: str | None) -> None:
    """At the end of `on` or `respond`: how many messages were still waiting, and whether the broker
    sends the QoS 1 ones again (with a --session over MQTT 5, where they were not acknowledged)."""
    if waiting:
        from iotnotify.words import counted, was

        again = f" (not acknowledged: the broker sends the QoS 1 ones again to --session {session})" \
            if session else ""
        note(f"iotnotify: warning: {counted(waiting, what)} waiting {was(waiting)} {not_done}{again}")
