"""`on`: run a command for each message (the dispatcher of shell scripts)."""

from __future__ import annotations

from typing import Any

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    MAX_COUNT,
    Seconds,
    SplitCommand,
    connection_options,
    dedupe_of,
    dedupe_option,
    long_running_options,
    mqtt_options,
    resolve_settings,
    selection_options,
    source_of,
    verifier_of,
    verify_options,
)
from iotnotify.cli.terminal import (
    left_waiting,
    note,
    ready_note,
    refused_note,
    state_notes,
    warn,
    warn_reconnecting,
    warn_text,
)
from iotnotify.shown import shown
from iotnotify.topics import check_share_name, shared
from iotnotify.words import counted

DEFAULT_QUEUE = 100  # messages `on` lets wait for a free CMD


@click.command("on", cls=SplitCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify on deploy/web -- ./deploy.sh                 # the payload on its stdin
  iotnotify on 'alerts/#' -- sh -c 'notify-send "$IOTNOTIFY_TOPIC" "$(cat)"'
  iotnotify on 'jobs/#' --parallel 4 --command-timeout 600 -- ./run-job.sh
  iotnotify on 'sensors/#' --exclude 'sensors/+/debug' --grep '"alarm": *true' -- ./page-oncall.sh
  iotnotify on deploy/web --session deployer -q 1 --dedupe 1h -- ./deploy.sh   # missed ones too; never twice
  iotnotify on jobs/build --share builders -- ./build.sh # on two hosts: each message runs once
  iotnotify on ci/done -C 1 -W 600 -- true && echo 'CI finished'
  iotnotify on deploy/web --verify trusted.keys -- ./deploy.sh    # only what a trusted key signed""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER... -- CMD [ARGS...]", shell_complete=topic_names)
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Run CMD for N messages at a time (default: one at a time, in arrival order).")
@click.option("--queue", type=click.IntRange(1, 10_000), default=DEFAULT_QUEUE, show_default=True, metavar="N",
              help="Let at most N messages wait for a free CMD: over MQTT 5 the broker holds QoS 1 messages back "
                   "beyond it (each is acknowledged once CMD ran for it) and a QoS 0 message beyond it is dropped "
                   "with a warning; over MQTT 3.1.1 the connection is held back.")
@click.option("--command-timeout", type=Seconds(), default=60.0, show_default=True, metavar="S",
              help="Stop CMD (and what it started) after S seconds: a warning, and on to the next message.")
@click.option("--count", "-C", type=click.IntRange(1, MAX_COUNT), metavar="N",
              help="Exit after running CMD for N messages: 0 if it succeeded each time, 11 if not.")
@click.option("--timeout", "-W", type=Seconds(), metavar="S",
              help="Stop taking messages after S seconds; exit 7 if fewer than --count (or, without it, "
                   "any) arrived.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--verbose", "-v", is_flag=True, help="Say on stderr for which message CMD ran, and how it ended.")
@click.option("--quiet", is_flag=True, help="Only warnings on stderr (no `subscribed`, no reconnection notes).")
@click.option("--share", metavar="GROUP", callback=lambda _c, _p, v: v if v is None else check_share_name(v),
              help="Take messages as a member of shared subscription GROUP: each goes to one member of the group "
                   "(on any host), which runs CMD once.")
@selection_options
@verify_options
@dedupe_option
@long_running_options
@mqtt_options
@connection_options
@click.pass_context
def on_command(ctx: click.Context, /, filters: tuple[str, ...], parallel: int, queue: int, command_timeout: float,
               count: int | None, timeout: float | None, ready_file: str | None, verbose: bool, quiet: bool,
               share: str | None, exclude: tuple[str, ...], grep: str | None, verify: str | None,
               verify_window: float | None, dedupe: float | None, qos: int, session: str | None,
               session_expiry: int, reconnect_delay: tuple[float, float], partial: bool, **_flags: Any) -> None:
    """Run CMD for each message on FILTER...: the payload on its stdin, the topic, QoS, retain flag and
    MQTT 5 properties in IOTNOTIFY_* variables, its output and errors to this terminal. A CMD that
    fails is one warning, and it goes on; nothing a peer publishes stops it. Ctrl-C stops (exit 0)
    once the commands running are done."""
    from iotnotify.dispatch import serve, subscribe_queued
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.on import Runner
    from iotnotify.selection import screened, selection_of
    from iotnotify.subscribe import check_enough, mark_ready

    command = list(ctx.meta.get("iotnotify.command", ()))
    if not command:
        raise errors.UsageError("give the command after --: iotnotify on FILTER -- CMD [ARGS...]")
    selection = selection_of(exclude, grep)
    settings = resolve_settings(ctx)
    verifier = verifier_of(verify, verify_window, settings.protocol)

    def dropped(message: Any, why: str) -> None:
        note(f"iotnotify: warning: message on {shown(message.topic)} dropped: {why}")

    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay)
    wanted = shared(list(filters), share) if share else list(filters)
    connection, inbox = subscribe_queued(source_of(settings), options, wanted, qos, parallel, queue, dropped,
                                         on_state=state_notes(quiet), on_refused=warn if partial else None,
                                         on_dropped=warn_reconnecting, on_busy=warn_text, on_notice=warn_text,
                                         patient=timeout is None)
    runner = Runner(command, parallel, command_timeout, _reports(command[0], verbose))
    with connection:
        ready_note(quiet)
        mark_ready(ready_file)
        try:
            messages = inbox.messages(timeout)
            serve(screened(messages, selection, dedupe_of(dedupe, verbose), verifier), runner.workers, count,
                  dropped)
        except KeyboardInterrupt:  # how a dispatcher stops (exit 0), once the commands running are done;
            if count is not None or timeout is not None:  # a script waiting for messages was interrupted
                interrupted = errors.Interrupted(f"interrupted after {counted(runner.workers.started, 'message')}")
                raise interrupted from None
        finally:
            inbox.stop()
            runner.workers.close()
            left_waiting(inbox.waiting, "message", "not run", session if settings.protocol == "5" else None)
            refused_note(verifier)
    handled = runner.workers.started
    if count is not None:
        check_enough(handled, count, timeout)
    elif timeout is not None and not handled:  # -W alone: it ran for S seconds; 7 only if nothing came
        raise errors.ReceiveTimeout(f"received no message within {timeout:g} s")
    if count is not None and runner.failed:
        raise errors.CommandFailed(f"{command[0]} failed for {runner.failed} of {counted(handled, 'message')}")


def _reports(name: str, verbose: bool) -> Any:
    """What says how CMD went for each message: a warning when it failed, else a line with -v."""
    def ran(result: Any) -> None:
        topic = shown(result.topic)
        if result.failure is not None:
            note(f"iotnotify: warning: message on {topic}: {shown(result.failure)}")
        elif result.exit_code is None:
            note(f"iotnotify: warning: message on {topic}: {name} did not finish within the --command-timeout: "
                 "stopped")
        elif result.exit_code < 0:
            note(f"iotnotify: warning: message on {topic}: {name} was killed by signal {-result.exit_code}")
        elif result.exit_code != 0:
            note(f"iotnotify: warning: message on {topic}: {name} exited {result.exit_code}")
        else:
            note(f"ran {name} for a message on {topic}", not verbose)

    return ran
