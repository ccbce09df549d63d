"""`request` and `respond`: request/response over MQTT 5, for shell scripts (as mosquitto_rr)."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import click

from iotnotify import errors
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
    output_options,
    properties_of,
    property_options,
    resolve_settings,
    sign_option,
    signer_of,
    source_of,
    style_of,
    verifier_of,
    verify_options,
)
from iotnotify.cli.terminal import (
    left_waiting,
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
from iotnotify.topics import check_share_name, shared
from iotnotify.words import counted


@click.command("request", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify request jobs/run 'backup db1'                   # replies come to the keys' private topic
  iotnotify request jobs/run -f job.json --response-topic jobs/replies -W 60 --json
  iotnotify request sensors/poll now -C 3 -v                # the first 3 replies
  iotnotify request jobs/run 'backup db1' --sign ops --verify responders.keys   # signed both ways""")
@click.argument("topic")
@click.argument("message", required=False)
@click.option("--message", "-m", "message_opt", metavar="TEXT", help="The request's payload.")
@click.option("--file", "-f", type=click.File("rb"), help="Send the contents of FILE as the request.")
@click.option("--stdin", "-s", is_flag=True, help="Send all of standard input as the request.")
@click.option("--count", "-C", type=click.IntRange(1, MAX_COUNT), default=1, show_default=True, metavar="N",
              help="Print N replies, then exit 0.")
@click.option("--timeout", "-W", type=Seconds(), default=30.0, show_default=True,
              metavar="S", help="Exit 7 if fewer than N replies came within S seconds.")
@output_options
@property_options
@sign_option
@verify_options
@mqtt_options
@connection_options
@click.pass_context
def request_command(ctx: click.Context, /, topic: str, message: str | None, message_opt: str | None,
                    file: BinaryIO | None, stdin: bool, count: int, timeout: float, sign: str | None,
                    verify: str | None, verify_window: float | None, qos: int, **flags: Any) -> None:
    """Publish a request to TOPIC and print the replies: those to its response topic (default: the
    keys' private topic) that carry its correlation data (random unless --correlation-data); with
    --verify, only those a trusted key signed."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.output import MessageWriter, formatter
    from iotnotify.payloads import payloads_from
    from iotnotify.properties import Properties
    from iotnotify.rpc.request import request
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
    verifier = verifier_of(verify, verify_window, settings.protocol)
    writer = MessageWriter(formatter(style), sys.stdout.buffer)
    connection, replies = request(source_of(settings), ConnectOptions.from_settings(settings), topic,
                                  next(iter(payloads)), qos, properties or Properties(), timeout,
                                  signer=signer_of(sign, settings.protocol), verifier=verifier)
    with connection:
        try:
            writer.write_all(itertools.islice(replies, count))
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            raise errors.Interrupted(f"interrupted after {counted(writer.count, 'reply', 'replies')}") from None
        finally:
            replies.close()
            refused_note(verifier)
    check_enough(writer.count, count, timeout, what="replies")


DEFAULT_QUEUE = 100  # requests `respond` lets wait for a free CMD


@click.command("respond", cls=SplitCommand, context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify respond jobs/run -- ./run-job.sh             # its stdout is the reply
  iotnotify respond 'sensors/+/poll' --parallel 4 -- sh -c 'read x; date'
  iotnotify respond rpc/upper --session upper -- tr a-z A-Z   # requests sent while it was away come too
  iotnotify respond jobs/run --share runners -- ./run-job.sh  # on two hosts: each request runs once
  iotnotify respond jobs/run --dedupe 10m -- ./run-job.sh     # a request delivered twice runs once
  iotnotify respond jobs/run --verify ops.keys --sign runner -- ./run-job.sh  # IOTNOTIFY_SIGNED_BY: who asked""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER... -- CMD [ARGS...]")
@click.option("--parallel", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Answer N requests at a time (default: one at a time, in order).")
@click.option("--queue", type=click.IntRange(1, 10_000), default=DEFAULT_QUEUE, show_default=True, metavar="N",
              help="Let at most N requests wait for a free CMD: the broker holds QoS 1 requests back beyond it "
                   "(each is acknowledged once answered); a QoS 0 request beyond it is refused with a warning.")
@click.option("--command-timeout", type=Seconds(), default=60.0, show_default=True,
              metavar="S", help="Stop CMD (and what it started) after S seconds and answer with an error.")
@click.option("--count", "-C", type=click.IntRange(1, MAX_COUNT), metavar="N",
              help="Exit after answering N requests: 0 if each got its reply, 6 if not.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Only warnings on stderr: no line per request answered.")
@click.option("--share", metavar="GROUP", callback=lambda _c, _p, v: v if v is None else check_share_name(v),
              help="Answer as a member of shared subscription GROUP: each request goes to one responder of the "
                   "group (on any host), which runs CMD once.")
@verify_options
@sign_option
@dedupe_option
@long_running_options
@mqtt_options
@connection_options
@click.pass_context
def respond_command(ctx: click.Context, /, filters: tuple[str, ...], parallel: int, queue: int,
                    command_timeout: float, count: int | None, ready_file: str | None, quiet: bool,
                    share: str | None, verify: str | None, verify_window: float | None, sign: str | None,
                    dedupe: float | None, qos: int,
                    session: str | None, session_expiry: int, reconnect_delay: tuple[float, float], partial: bool,
                    **_flags: Any) -> None:
    """Answer each request on FILTER...: run CMD with the payload on stdin, and publish what it prints
    to the request's response topic, with its correlation data. A CMD that fails (non-zero exit, or
    --command-timeout) is said on stderr, and its reply gets a user property `error`. Every request
    ends in a reply or a warning; nothing a requester sends stops it. Ctrl-C stops (exit 0)."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.rpc.respond import listen, serve, unanswered_error
    from iotnotify.subscribe import mark_ready

    command = list(ctx.meta.get("iotnotify.command", ()))
    if not command:
        raise errors.UsageError("give the command after --: iotnotify respond FILTER -- CMD [ARGS...]")
    settings = resolve_settings(ctx)
    if settings.protocol != "5":
        raise errors.UsageError("respond needs MQTT 5 (response topic, correlation data): not --protocol 3.1.1")
    verifier, signer = verifier_of(verify, verify_window, settings.protocol), signer_of(sign, settings.protocol)
    answered = _answers(command[0], quiet)

    def refused(message: Any, why: str) -> None:
        note(f"iotnotify: warning: message on {shown(message.topic)} not answered: {why}")

    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay)
    wanted = shared(list(filters), share) if share else list(filters)
    connection, inbox, responder = listen(source_of(settings), options, wanted, qos, command, parallel,
                                          queue, command_timeout, answered, refused,
                                          on_dropped=warn_reconnecting, on_state=state_notes(quiet),
                                          on_partial=warn if partial else None, on_busy=warn_text,
                                          on_notice=warn_text, signer=signer)
    with connection:
        ready_note(quiet)
        mark_ready(ready_file)
        handled = 0
        try:
            handled = serve(inbox, responder, count, refused, dedupe_of(dedupe, not quiet), verifier)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a responder stops; the requests being answered are finished first
        finally:
            inbox.stop()
            responder.workers.close()
            left_waiting(inbox.waiting, "request", "not answered", session)
            refused_note(verifier)
    if count is not None and (error := unanswered_error(handled, responder)) is not None:
        raise error


def _answers(name: str, quiet: bool) -> Callable[[Any], None]:
    """What says how each request went: one line (a warning, or `answered...` unless `quiet`)."""
    def answered(answer: Any) -> None:
        topic = shown(answer.topic)
        if answer.failure is not None:
            note(f"iotnotify: warning: request on {topic}: reply not sent: {answer.failure}")
        elif answer.exit_code != 0:
            how = f"exited {answer.exit_code}" if answer.exit_code is not None else "timed out"
            note(f"iotnotify: warning: request on {topic}: {name} {how}"
                 + (f": {shown(answer.stderr)}" if answer.stderr and answer.exit_code is not None else "")
                 + " (answered with a user property `error`)")
        elif answer.replaced is not None:
            note(f"iotnotify: warning: request on {topic}: {answer.replaced} (answered with a user property `error`)")
        else:
            note(f"answered a request on {topic}", quiet)

    return answered
