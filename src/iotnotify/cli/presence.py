"""`presence`: who is connected and who went away, and how (presence.py)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import CONTEXT, Seconds, connection_options, mqtt_options, resolve_settings, source_of
from iotnotify.cli.terminal import quiet_stdout, ready_note, state_notes, warn, warn_reconnecting, warn_text
from iotnotify.shown import escaped, shown

if TYPE_CHECKING:
    from rich.table import Table

    from iotnotify.presence import Board, Change

EVENTS_REFUSED = "the keys may not receive AWS IoT Core's lifecycle events ($aws/events/...)"
ONCE_AT_MOST = 10.0  # s --once gathers without -W
HINT = (f"{EVENTS_REFUSED}: ask for keys that may (the endpoint's IOTNOTIFY_LIFECYCLE_EVENTS, `iotnotify local "
        "--lifecycle-events`), or give status topics with --no-events")


@click.command("presence", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify presence                                   # connects and disconnects, live, as they happen
  iotnotify presence 'status/#'                        # and what clients last said there (their wills)
  iotnotify presence 'status/#' --no-events --once --json    # the retained statuses, as one JSON document
  iotnotify subscribe jobs/# --will-topic status/worker1 --will-message crashed --will-retain   # a will""")
@click.argument("filters", nargs=-1, metavar="[FILTER...]", shell_complete=topic_names)
@click.option("--no-events", is_flag=True,
              help="Do not subscribe to the lifecycle events: only FILTER... (status topics, wills).")
@click.option("--once", is_flag=True,
              help="Print what is known once the retained status messages came (1 s without one, 10 s at most), "
                   "or after -W, then exit.")
@click.option("--timeout", "-W", type=Seconds(), metavar="S",
              help="With --once: gather for S seconds first (lifecycle events are not retained: only those "
                   "of that time).")
@click.option("--json", "as_json", is_flag=True,
              help="A JSON line per change (with --once: one JSON document, clients and statuses).")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Only warnings on stderr.")
@mqtt_options
@connection_options
@click.pass_context
def presence_command(ctx: click.Context, /, filters: tuple[str, ...], no_events: bool, once: bool,
                     timeout: float | None, as_json: bool, ready_file: str | None, quiet: bool, qos: int,
                     **_flags: Any) -> None:
    """Show clients connecting and going away (AWS IoT Core's lifecycle events: `left` when a
    client disconnected cleanly, `lost` with AWS's reason when it did not), and the messages on
    status topics FILTER... (retained ones first: wills, `up` messages). Live until Ctrl-C (exit 0);
    a live table on a terminal, a line per change otherwise; --once prints the state and exits."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.presence import EVENTS_FILTER, Board, change_of
    from iotnotify.subscribe import RETAINED_IDLE, mark_ready, subscribe

    if no_events and not filters:
        raise errors.UsageError("--no-events leaves nothing to watch: give status topics (FILTER...)")
    if timeout is not None and not once:
        raise errors.UsageError("-W goes with --once")
    wanted = [*([] if no_events else [EVENTS_FILTER]), *filters]
    settings = resolve_settings(ctx)
    options = ConnectOptions.from_settings(settings, long_running=not once)
    try:
        connection, inbox = subscribe(source_of(settings), options, wanted, qos, on_state=state_notes(quiet or once),
                                      on_refused=None if no_events or not filters else _without_events,
                                      on_dropped=warn_reconnecting,
                                      on_busy=warn_text, on_notice=warn_text, patient=timeout is None)
    except errors.Refused as e:
        raise errors.Refused(HINT) if not no_events and EVENTS_FILTER in str(e) else e from None
    board = Board()
    with connection:
        if not once:
            ready_note(quiet)
        mark_ready(ready_file)
        try:
            if once:  # the retained ones come at once: 1 s without one ends them (and a busy account's events
                messages = inbox.messages(timeout, None) if timeout is not None else \
                    inbox.messages(ONCE_AT_MOST, RETAINED_IDLE)  # cannot hold it for longer than ONCE_AT_MOST)
                for message in messages:
                    board.take(change_of(message))
                _print_board(board, as_json)
            elif sys.stdout.isatty() and not as_json:
                _live(board, inbox, change_of)
            else:
                for message in inbox.messages():
                    change = change_of(message)
                    board.take(change)
                    line = json.dumps(change.record(), ensure_ascii=False) if as_json else _line(change)
                    sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
                    sys.stdout.buffer.flush()
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            pass  # how a live presence ends
        finally:
            inbox.stop()


def _without_events(error: errors.IotNotifyError) -> None:
    """With status topics, a refusal of the events (or of some topics) is said, and on with the rest."""
    from iotnotify.presence import EVENTS_FILTER

    warn(errors.Refused(f"{EVENTS_REFUSED}: only the status topics are watched") if EVENTS_FILTER in str(error)
         else error)


def _state(change: Change) -> str:
    if change.kind == "connected":
        return "connected"
    if change.kind == "disconnected":
        return "left" if change.clean else f"lost ({change.reason or 'no reason given'})"  # (REASON-shaped)
    return ("status (retained) " if change.retained else "status ") + shown(change.payload.decode("utf-8", "replace"))


def _line(change: Change) -> str:
    """One change as a line: `TIME connected ID`, `TIME lost ID (CONNECTION_LOST)`, `TIME status TOPIC PAYLOAD`."""
    from iotnotify.times import iso

    state = _state(change)
    word, _, rest = state.partition(" ")
    return f"{iso(change.time, milliseconds=True)} {word} {shown(change.name)}" + (f" {rest}" if rest else "")


def _table(board: Board, rows: int | None = None) -> Table:
    """The board as a table, the newest change first (the first `rows` of them)."""
    import itertools

    from rich.table import Table

    from iotnotify.times import iso

    table = Table(box=None, pad_edge=False)
    table.add_column("client or status topic", style="cyan", no_wrap=True, max_width=60)
    table.add_column("state", no_wrap=True, max_width=80)
    table.add_column("since", style="dim", no_wrap=True)
    for change in itertools.islice(reversed(board.entries.values()), rows):
        style = "green" if change.kind == "connected" else "bold red" if change.crashed else ""
        table.add_row(escaped(change.name), f"[{style}]{escaped(_state(change))}[/]" if style else
                      escaped(_state(change)), iso(change.time))
    return table


def _print_board(board: Board, as_json: bool) -> None:
    if as_json:
        sys.stdout.buffer.write(json.dumps(board.record(), ensure_ascii=False).encode("utf-8", "replace") + b"\n")
        sys.stdout.buffer.flush()
        return
    from rich.console import Console

    Console(soft_wrap=True).print(_table(board)) if board.entries else click.echo("nothing known yet", err=True)


def _live(board: Board, inbox: Any, change_of: Any) -> None:
    """A table of the clients and statuses, the newest first, redrawn as they change."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    with Live(_table(board, 0), console=console, auto_refresh=False) as live:
        while True:
            batch = inbox.drain(1.0)
            for message in batch:
                board.take(change_of(message))
            if batch:
                live.update(_table(board, max(console.height - 2, 1)), refresh=True)
