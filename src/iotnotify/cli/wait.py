"""`wait`: exit 0 once one message from each named sender came (a quorum), 7 naming who did not."""

from __future__ import annotations

import sys
from typing import Any

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    Seconds,
    connection_options,
    long_running_options,
    mqtt_options,
    output_options,
    resolve_settings,
    selection_options,
    source_of,
    style_of,
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


@click.command("wait", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify wait deploy/done --from web1,web2,web3 -W 600 && echo 'deployed everywhere'
  iotnotify send deploy/done ok --sender web1       # on each host (IOTNOTIFY_SENDER=web1 also does)
  iotnotify wait 'backup/+/done' --from db1,db2 --verify hosts.keys --json   # proven senders (send --sign)
  iotnotify wait ci/ready --from build,test --session gate -q 1   # what came while it was not running too""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER...", shell_complete=topic_names)
@click.option("--from", "senders", multiple=True, required=True, metavar="A,B,C",
              help="The senders to wait for, one message from each (repeatable): with --verify, the names its FILE "
                   "gives their keys; else the names they send with (send --sender NAME).")
@click.option("--timeout", "-W", type=Seconds(), metavar="S",
              help="Exit 7, naming the senders still missing, if not all came within S seconds.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Do not say on stderr who came and who is still missing.")
@output_options
@selection_options
@verify_options
@long_running_options
@mqtt_options
@connection_options
@click.pass_context
def wait_command(ctx: click.Context, /, filters: tuple[str, ...], senders: tuple[str, ...], timeout: float | None,
                 ready_file: str | None, quiet: bool, exclude: tuple[str, ...], grep: str | None,
                 verify: str | None, verify_window: float | None, qos: int, session: str | None,
                 session_expiry: int, reconnect_delay: tuple[float, float], partial: bool, **flags: Any) -> None:
    """Wait on FILTER... until one message came from each sender --from names, printing it (as
    subscribe does); exit 0 then, or 7 naming those still missing after --timeout. Not a count: a
    sender that sends twice, or a message delivered twice, is one."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.output import MessageWriter, formatter
    from iotnotify.quorum import Quorum, names_of
    from iotnotify.selection import screened, selection_of
    from iotnotify.subscribe import mark_ready, subscribe
    from iotnotify.words import counted

    style = style_of(flags)
    quorum = Quorum(names_of(senders), by_signer=verify is not None)
    selection = selection_of(exclude, grep)
    settings = resolve_settings(ctx)
    if settings.protocol != "5":
        raise errors.UsageError("wait needs MQTT 5 (senders are named in user properties): not --protocol 3.1.1")
    verifier = verifier_of(verify, verify_window, settings.protocol)
    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay, long_running=True)
    connection, inbox = subscribe(source_of(settings), options, list(filters), qos, on_state=state_notes(quiet),
                                  on_refused=warn if partial else None, on_dropped=warn_reconnecting,
                                  on_busy=warn_text, on_notice=warn_text, patient=timeout is None)
    writer = MessageWriter(formatter(style), sys.stdout.buffer)
    interactive = sys.stderr.isatty() and not quiet

    def missing() -> str:
        left = quorum.missing
        return f"{', '.join(left)} ({len(left)} of {len(quorum.names)})"

    with connection:
        ready_note(quiet)
        mark_ready(ready_file)
        try:
            arrivals = quorum.arrivals(screened(inbox.messages(timeout), selection, verifier=verifier))
            for message in arrivals:
                writer.write_all([message])
                if not quorum.done:
                    note(f"iotnotify: {quorum.sender_of(message)} came; still missing {missing()}", not interactive)
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            raise errors.Interrupted(f"interrupted; still missing {missing()}") from None
        finally:
            inbox.stop()
            refused_note(verifier)
    if not quorum.done:
        within = f" within {timeout:g} s" if timeout is not None else ""
        raise errors.ReceiveTimeout(f"{counted(len(quorum.names) - len(quorum.missing), 'sender')} of "
                                    f"{len(quorum.names)} came{within}; missing {', '.join(quorum.missing)}")
