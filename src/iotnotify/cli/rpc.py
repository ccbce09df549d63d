"""`request` and `respond`: request/response over MQTT 5, for shell scripts (as mosquitto_rr)."""

from __future__ import annotations

import itertools
import sys
from typing import Any, BinaryIO

import click

from iotnotify import errors
from iotnotify.cli.options import (
    CONTEXT,
    connection_options,
    long_running_options,
    mqtt_options,
    output_options,
    properties_of,
    property_options,
    resolve_settings,
    source_of,
    style_of,
)
from iotnotify.cli.terminal import note, quiet_stdout


@click.command("request", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify request jobs/run 'backup db1'                   # replies come to the keys' private topic
  iotnotify request jobs/run -f job.json --response-topic jobs/replies -W 60 --json
  iotnotify request sensors/poll now -C 3 -v                # the first 3 replies""")
@click.argument("topic")
@click.argument("message", required=False)
@click.option("--message", "-m", "message_opt", metavar="TEXT", help="The request's payload.")
@click.option("--file", "-f", type=click.File("rb"), help="Send the contents of FILE as the request.")
@click.option("--stdin", "-s", is_flag=True, help="Send all of standard input as the request.")
@click.option("--count", "-C", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Print N replies, then exit 0.")
@click.option("--timeout", "-W", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              metavar="S", help="Exit 7 if fewer than N replies came within S seconds.")
@output_options
@property_options
@mqtt_options
@connection_options
@click.pass_context
def request_command(ctx: click.Context, /, topic: str, message: str | None, message_opt: str | None,
                    file: BinaryIO | None, stdin: bool, count: int, timeout: float, qos: int, **flags: Any) -> None:
    """Publish a request to TOPIC and print the replies: those to its response topic (default: the
    keys' private topic) that carry its correlation data (random unless --correlation-data)."""
    from iotnotify.messages import payloads_from
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.output import MessageWriter, formatter
    from iotnotify.properties import Properties
    from iotnotify.rpc import request
    from iotnotify.subscribe import check_enough

    style = style_of(flags)
    if message is not None and message_opt is not None:
        raise errors.UsageError("give the message once: as MESSAGE or with -m")
    text = message if message is not None else message_opt
    if text is None and file is None and not stdin:
        text = ""  # a request may have no payload
    payloads = payloads_from(text, file, stdin, False, sys.stdin.buffer)
    settings = resolve_settings(ctx)
    properties = properties_of(flags, settings.protocol)
    if settings.protocol != "5":
        raise errors.UsageError("request needs MQTT 5 (response topic, correlation data): not --protocol 3.1.1")
    writer = MessageWriter(formatter(style), sys.stdout.buffer)
    connection, replies = request(source_of(settings), ConnectOptions.from_settings(settings), topic,
                                  next(iter(payloads)), qos, properties or Properties(), timeout)
    with connection:
        try:
            writer.write_all(itertools.islice(replies, count))
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            raise errors.Interrupted(f"interrupted after {writer.count} replies") from None
    check_enough(writer.count, count, timeout, what="replies")


class _SplitCommand(click.Command):
    """`respond FILTER... -- CMD [ARGS...]`: what follows the first `--` is the command, untouched by click."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            args, ctx.meta["iotnotify.command"] = args[:at], args[at + 1 :]
        return super().parse_args(ctx, args)


@click.command("respond", cls=_SplitCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify respond jobs/run -- ./run-job.sh             # its stdout is the reply
  iotnotify respond 'sensors/+/poll' --parallel 4 -- sh -c 'read x; date'
  iotnotify respond rpc/upper -- tr a-z A-Z""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER... -- CMD [ARGS...]")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Answer N requests at a time (default: one at a time, in order).")
@click.option("--command-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              metavar="S", help="Stop CMD after S seconds and answer with an error.")
@click.option("--count", "-C", type=click.IntRange(min=1), metavar="N", help="Exit 0 after answering N requests.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Only errors on stderr: no line per request.")
@long_running_options
@mqtt_options
@connection_options
@click.pass_context
def respond_command(ctx: click.Context, /, filters: tuple[str, ...], parallel: int, command_timeout: float,
                    count: int | None, ready_file: str | None, quiet: bool, qos: int, session: str | None,
                    session_expiry: int, reconnect_delay: tuple[float, float], partial: bool, **_flags: Any) -> None:
    """Answer each request on FILTER...: run CMD with the payload on stdin, and publish what it prints
    to the request's response topic, with its correlation data. A CMD that fails (non-zero exit, or
    --command-timeout) is said on stderr, and its reply gets a user property `error`. Ctrl-C stops (exit 0)."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.rpc import Answer, Responder, serve
    from iotnotify.subscribe import mark_ready, subscribe

    command = list(ctx.meta.get("iotnotify.command", ()))
    if not command:
        raise errors.UsageError("give the command after --: iotnotify respond FILTER -- CMD [ARGS...]")
    settings = resolve_settings(ctx)
    if settings.protocol != "5":
        raise errors.UsageError("respond needs MQTT 5 (response topic, correlation data): not --protocol 3.1.1")

    def answered(answer: Answer) -> None:
        if answer.failure is not None:
            note(f"iotnotify: warning: request on {answer.topic}: reply not sent: {answer.failure}")
        if answer.exit_code != 0:
            how = f"exited {answer.exit_code}" if answer.exit_code is not None else "timed out"
            note(f"iotnotify: warning: request on {answer.topic}: {command[0]} {how}"
                 + (f": {answer.stderr}" if answer.stderr and answer.exit_code is not None else "")
                 + " (answered with a user property `error`)")
        elif answer.failure is None:
            note(f"answered a request on {answer.topic}", quiet)

    def skipped(message: Any, why: str) -> None:
        note(f"iotnotify: warning: message on {message.topic} not answered: {why}")

    def refused(error: errors.IotNotifyError) -> None:
        note(f"iotnotify: warning: {error}")

    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay)
    connection, inbox = subscribe(source_of(settings), options, list(filters), qos,
                                  on_refused=refused if partial else None)
    with connection:
        note("subscribed", quiet)
        mark_ready(ready_file)
        responder = Responder(connection, command, parallel, command_timeout, answered)
        try:
            serve(inbox, responder, count, skipped)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a responder stops; the requests being answered are finished first
        finally:
            responder.close()
