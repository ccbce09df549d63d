"""`tail`: a live log of the traffic for people; plain `subscribe -v` lines when stdout is not a terminal."""

from __future__ import annotations

import re
import sys
import time
from typing import Any, BinaryIO

import click

from iotnotify import errors
from iotnotify.cli import (
    CONTEXT,
    _connection_flags,
    _long_running_flags,
    _mqtt_flags,
    _options,
    _quiet_stdout,
    _settings,
    _source,
    cli,
)

DEFAULT_TOPIC = "/serverless/pubsub"  # the tutorial's
REFRESH = 0.1  # s between redraws


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify --profile local tail 'demo/#'
  iotnotify tail 'sensors/#' --grep temp --save traffic.jsonl
  iotnotify tail demo/chat --send demo/chat        # type a line, Enter publishes it
  iotnotify tail 'alerts/#' | cat                  # not a terminal: plain `topic payload` lines""")
@click.argument("filters", nargs=-1, metavar="[FILTER...]")
@click.option("--lines", "-n", type=click.IntRange(min=1), metavar="N",
              help="Messages to keep and show (default: as many as fit on the screen).")
@click.option("--save", type=click.File("ab"), metavar="FILE",
              help="Append every message received to FILE as JSON lines (the subscribe --json format).")
@click.option("--grep", metavar="PATTERN", help="Show only messages whose topic or payload match (a regex).")
@click.option("--send", "send_topic", metavar="TOPIC", help="Type lines to publish to TOPIC (Enter sends).")
@_long_running_flags
@_mqtt_flags
@_connection_flags
@click.pass_context
def tail(ctx: click.Context, filters: tuple[str, ...], lines: int | None, save: BinaryIO | None,
         grep: str | None, send_topic: str | None, qos: int, **flags: Any) -> None:
    """Show the traffic on FILTER... live: connection state, newest messages, counters. Ctrl-C stops."""
    from iotnotify.output import OutputStyle, formatter
    from iotnotify.topics import check_topic

    try:
        pattern = re.compile(grep) if grep is not None else None
    except re.error as e:
        raise errors.UsageError(f"--grep {grep!r} is not a valid pattern: {e}") from None
    if send_topic is not None:
        check_topic(send_topic, aws=False)
        if not sys.stdin.isatty():
            raise errors.UsageError("--send reads what you type: standard input must be a terminal")
    settings = _settings(ctx, **flags)
    topics = list(filters) or [settings.topic or DEFAULT_TOPIC]
    source = _source(settings)
    options = _options(settings, flags)
    save_line = formatter(OutputStyle(json_lines=True))
    def refused(error: errors.IotNotifyError) -> None:  # --partial: say which, and go on with the rest
        click.echo(f"iotnotify: warning: {error}", err=True)

    on_refused = refused if flags.get("partial") else None
    if not sys.stdout.isatty():
        _run_plain(source, options, topics, qos, pattern, save, save_line, on_refused)
        return
    _run_live(source, options, topics, qos, lines, pattern, save, send_topic, save_line, on_refused)


def _run_plain(source: Any, options: Any, topics: list[str], qos: int, pattern: Any, save: BinaryIO | None,
               save_line: Any, on_refused: Any) -> None:
    """Not a terminal: `subscribe -v` lines (those --grep lets through), then the summary."""
    from iotnotify import subscribe as receiving
    from iotnotify.live import TailState
    from iotnotify.output import OutputStyle, formatter

    plain = formatter(OutputStyle(verbose=True))
    state = TailState(1, pattern)
    connection, inbox = receiving.subscribe(source, options, topics, qos, on_refused=on_refused)
    try:
        for message in inbox.messages():
            state.add(message)
            if save is not None:
                save.write(save_line(message))
                save.flush()
            if state.matches(message):
                sys.stdout.buffer.write(plain(message))
                sys.stdout.buffer.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how tail ends
    finally:
        connection.disconnect()
    click.echo(state.summary(), err=True)


def _run_live(source: Any, options: Any, topics: list[str], qos: int, lines: int | None, pattern: Any,
              save: BinaryIO | None, send_topic: str | None, save_line: Any, on_refused: Any) -> None:
    """The live view: draw at most every REFRESH seconds, whatever the traffic; a summary at the end."""
    import contextlib

    from rich.console import Console
    from rich.live import Live

    from iotnotify import subscribe as receiving
    from iotnotify.keyboard import LineEditor
    from iotnotify.live import TailState, render
    from iotnotify.messages import Message
    from iotnotify.send import Publisher
    from iotnotify.allowance import check_publish
    from iotnotify.topics import check_topic

    console = Console()
    keys = source.get()
    if send_topic is not None:
        check_topic(send_topic, keys.aws_rules)
        check_publish(keys, send_topic)
    state = TailState(lines or max(console.height - 3, 1), pattern, host=f"{keys.host}:{keys.port}",
                      protocol=options.protocol, expires=keys.expiration, send_topic=send_topic)
    connection, inbox = receiving.subscribe(source, options, topics, qos, on_state=state.set_state,
                                            on_refused=on_refused)
    state.client_id = connection.client_id
    state.set_state("connected")
    editor = LineEditor(lambda text: setattr(state, "typing", text)) if send_topic else None
    publisher = Publisher(connection, send_topic, qos, retain=False) if send_topic else None
    try:
        with (editor or contextlib.nullcontext()), Live(console=console, auto_refresh=False,
                                                         redirect_stdout=False) as live:
            drawn = 0.0
            while True:
                for message in inbox.drain(REFRESH):
                    state.add(message)
                    if save is not None:
                        save.write(save_line(message))
                while publisher is not None and editor is not None and not editor.lines.empty():
                    payload = editor.lines.get()
                    try:
                        publisher.publish(payload)
                    except errors.UsageError as e:  # over the broker's limit: say so where it was typed
                        state.typing = f"(not sent: {e})"
                        continue
                    state.add(Message(publisher.topic, payload, qos), sent=True)
                if time.monotonic() - drawn >= REFRESH:
                    if save is not None:
                        save.flush()
                    state.expires = source.current.expiration if source.current else state.expires
                    live.update(render(state, console.width, console.height), refresh=True)
                    drawn = time.monotonic()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how tail ends
    finally:
        connection.disconnect()
        if save is not None:
            save.flush()
    click.echo(state.summary(), err=True)
