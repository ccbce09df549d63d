"""`watch`: say (and run CMD) when no message came on FILTER... for a while (watch.py)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    MAX_COUNT,
    Duration,
    Seconds,
    SplitCommand,
    connection_options,
    long_running_options,
    mqtt_options,
    resolve_settings,
    source_of,
    verifier_of,
    verify_options,
)
from iotnotify.cli.terminal import (
    note,
    quiet_stdout,
    ready_note,
    refused_note,
    state_notes,
    warn,
    warn_reconnecting,
    warn_text,
)
from iotnotify.shown import shown


@click.command("watch", cls=SplitCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify watch status/backup --silence 26h -- ./page.sh 'no backup today'
  iotnotify watch 'heartbeat/+' --silence 3m --per-topic    # a line when one host goes quiet, one when it is back
  iotnotify watch jobs/progress --silence 10m -C 1 -q 0 && echo 'the job stalled'
  iotnotify watch 'heartbeat/+' --silence 3m --per-topic --json | jq -c 'select(.event == "silent")'""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER... [-- CMD [ARGS...]]", shell_complete=topic_names)
@click.option("--silence", type=Duration(), required=True, metavar="DURATION",
              help="How long without a message is a silence (90s, 10m, 26h).")
@click.option("--per-topic", is_flag=True,
              help="Watch each topic heard on FILTER... by itself (up to 10,000): a silence per topic.")
@click.option("--count", "-C", type=click.IntRange(1, MAX_COUNT), metavar="N", help="Exit 0 after N silences.")
@click.option("--json", "as_json", is_flag=True, help="Print each silence and resumption as a JSON line.")
@click.option("--command-timeout", type=Seconds(), default=60.0, show_default=True, metavar="S",
              help="Stop CMD (and what it started) after S seconds.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription (the watch begins).")
@click.option("--quiet", is_flag=True, help="Only warnings on stderr (no `subscribed`, no reconnection notes).")
@verify_options
@long_running_options
@mqtt_options
@connection_options
@click.pass_context
def watch_command(ctx: click.Context, /, filters: tuple[str, ...], silence: float, per_topic: bool, count: int | None,
                  as_json: bool, command_timeout: float, ready_file: str | None, quiet: bool, verify: str | None,
                  verify_window: float | None, qos: int,
                  session: str | None, session_expiry: int, reconnect_delay: tuple[float, float], partial: bool,
                  **_flags: Any) -> None:
    """Print a line when no message came on FILTER... for --silence DURATION (once per silence; the
    next message ends it, and says so), and run CMD for each silence (once for those that began
    together): IOTNOTIFY_EVENT=silent, IOTNOTIFY_TOPIC (with --per-topic), IOTNOTIFY_SILENT_SECONDS,
    IOTNOTIFY_LAST_TIME, IOTNOTIFY_SILENCES (how many), IOTNOTIFY_SILENT_TOPICS (a line each).
    Runs until Ctrl-C (exit 0), or -C N silences."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.selection import screened
    from iotnotify.subscribe import mark_ready, subscribe
    from iotnotify.watch import MAX_TOPICS, Silences

    command = list(ctx.meta.get("iotnotify.command", ()))
    settings = resolve_settings(ctx)
    verifier = verifier_of(verify, verify_window, settings.protocol)
    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay, long_running=True)
    connection, inbox = subscribe(source_of(settings), options, list(filters), qos, on_state=state_notes(quiet),
                                  on_refused=warn if partial else None, on_dropped=warn_reconnecting,
                                  on_busy=warn_text, on_notice=warn_text)
    silences, said = 0, False
    with connection:
        ready_note(quiet)
        mark_ready(ready_file)
        watching = Silences(silence, per_topic)
        try:
            while count is None or silences < count:
                taken = screened(iter(inbox.drain(watching.wait())), verifier=verifier)  # no wake-up before due
                ended = [event for message in taken for event in watching.heard(message.topic)]
                began = watching.due()
                counted = began[:None if count is None else count - silences]  # -C N: N said, and counted
                for event in ended + counted:
                    _say(event, as_json, " ".join(filters))
                silences += len(counted)
                if command and began:  # one run for the silences that began together (a network gone: many)
                    _run(command, began, command_timeout)
                if watching.full and not said:
                    said = True
                    note(f"iotnotify: warning: over {MAX_TOPICS} topics: those past it are not watched one by one")
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            pass  # how a watch ends
        finally:
            inbox.stop()
            refused_note(verifier)


def _say(event: Any, as_json: bool, filters: str) -> None:
    """One line on stdout for a silence that began or ended (a JSON line with --json)."""
    import time

    from iotnotify.times import iso

    if as_json:
        line = json.dumps({"time": iso(time.time(), milliseconds=True), **event.record()}, ensure_ascii=False)
    else:
        where = shown(event.topic) if event.topic else filters
        if event.kind == "silent":
            last = f"the last at {iso(event.last, milliseconds=True)}" if event.last is not None else \
                "none since the watch began"
            line = f"{iso(time.time())} silent {where}: no message for {event.seconds:.0f} s ({last})"
        else:
            line = f"{iso(time.time())} resumed {where} after {event.seconds:.0f} s"
    sys.stdout.buffer.write(line.encode("utf-8", "replace") + b"\n")
    sys.stdout.buffer.flush()


def _run(command: list[str], began: list[Any], timeout: float) -> None:
    """CMD for the silences that began together, with what they are in IOTNOTIFY_* variables (the
    first's, and with several, the count and every topic); how it ended said if not well."""
    from iotnotify.rpc.child import run_passing
    from iotnotify.watch import environment

    try:
        code = run_passing(command, b"", environment(began, dict(os.environ)), timeout)
    except (OSError, ValueError) as e:
        note(f"iotnotify: warning: cannot run {command[0]}: {getattr(e, 'strerror', None) or e}")
        return
    if code is None:
        note(f"iotnotify: warning: {command[0]} did not finish within the --command-timeout: stopped")
    elif code != 0:
        note(f"iotnotify: warning: {command[0]} exited {code}")

