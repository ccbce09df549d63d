"""`tail`: a live log of the traffic for people; plain `subscribe -v` lines when stdout is not a terminal."""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    connection_options,
    long_running_options,
    mqtt_options,
    resolve_settings,
    setting_option,
    source_of,
    verifier_of,
    verify_options,
    will_of,
    will_options,
)
from iotnotify.cli.terminal import note, quiet_stdout, state_notes, warn, warn_reconnecting, warn_text

MAX_LINES = 10_000  # lines of the live log kept (a screen shows fewer)


@click.command("tail", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify --profile local tail 'demo/#'
  iotnotify tail 'sensors/#' --grep temp --save traffic.jsonl
  iotnotify tail 'sensors/#' -T 'sensors/+/debug'        # all but the debug topics
  iotnotify tail demo/chat --send demo/chat        # type a line, Enter publishes it
  iotnotify tail 'alerts/#' | cat                  # not a terminal: plain `topic payload` lines
  iotnotify tail ops/chat --will-topic ops/presence --will-message 'tail gone'
  iotnotify tail 'deploy/#' --verify trusted.keys  # only signed messages, each with its signer (✓ NAME)""")
@click.argument("filters", nargs=-1, metavar="[FILTER...]", shell_complete=topic_names)
@click.option("--lines", "-n", type=click.IntRange(1, MAX_LINES), metavar="N",
              help="Messages to keep and show (default: as many as fit on the screen).")
@click.option("--save", type=click.File("ab"), metavar="FILE",
              help="Append every message received to FILE as JSON lines (the subscribe --json format).")
@click.option("--grep", metavar="PATTERN", help="Show only messages whose topic or payload match (a regex).")
@click.option("--exclude", "-T", multiple=True, metavar="FILTER", shell_complete=topic_names,
              help="Do not show messages on topics FILTER matches (MQTT filter syntax; repeatable). Counted and "
                   "saved all the same, as with --grep.")
@verify_options
@click.option("--send", "send_topic", metavar="TOPIC", help="Type lines to publish to TOPIC (Enter sends).")
@setting_option("topic")
@long_running_options
@will_options
@mqtt_options
@connection_options
@click.pass_context
def tail_command(ctx: click.Context, /, filters: tuple[str, ...], lines: int | None, save: BinaryIO | None,
                 grep: str | None, exclude: tuple[str, ...], verify: str | None, verify_window: float | None,
                 send_topic: str | None, qos: int, session: str | None, session_expiry: int,
                 reconnect_delay: tuple[float, float], partial: bool, **flags: Any) -> None:
    """Show the traffic on FILTER... live: connection state, newest messages, counters. Ctrl-C stops."""
    from iotnotify.cli.live import run_live, run_plain
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.selection import selection_of
    from iotnotify.topics import TUTORIAL_TOPIC, check_topic

    selection = selection_of(exclude, grep, topics_too=True)
    if send_topic is not None:
        check_topic(send_topic, aws=False)
        if not sys.stdin.isatty():
            raise errors.UsageError("--send reads what you type: standard input must be a terminal")
    settings = resolve_settings(ctx)
    verifier = verifier_of(verify, verify_window, settings.protocol, say=not sys.stdout.isatty())
    topics = list(filters) or [settings.topic or TUTORIAL_TOPIC]
    source = source_of(settings)
    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay,
                                           will_of(flags, settings.protocol), long_running=True)

    on_refused = warn if partial else None  # --partial: say which, and go on with the rest
    if sys.stdout.isatty():
        summary = run_live(source, options, topics, qos, lines, selection, save, send_topic, on_refused, verifier)
    else:
        summary, reader_gone = run_plain(source, options, topics, qos, selection, save, sys.stdout.buffer, on_refused,
                                         on_dropped=warn_reconnecting, on_busy=warn_text,
                                         on_notice=warn_text, on_state=state_notes(False), verifier=verifier)
        if reader_gone:
            quiet_stdout()
    note(summary)
