"""`keys`, `send`, `subscribe`: the commands that use keys and the broker."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    MAX_COUNT,
    Seconds,
    connection_options,
    dedupe_of,
    dedupe_option,
    long_running_options,
    mqtt_options,
    output_options,
    properties_of,
    property_options,
    resolve_settings,
    selection_options,
    setting_option,
    sign_option,
    signer_of,
    source_of,
    style_of,
    verifier_of,
    verify_options,
    will_of,
    will_options,
)
from iotnotify.cli.terminal import (
    end_quickly,
    note,
    quiet_stdout,
    ready_note,
    refused_note,
    state_notes,
    warn,
    warn_reconnecting,
    warn_text,
)
from iotnotify.outgoing import AGENT, HTTPS, VIAS, Outgoing, route
from iotnotify.quick.argv import NAMES as SEND
from iotnotify.topics import SHARE, check_share_name
from iotnotify.words import counted

if TYPE_CHECKING:
    from iotnotify.dump import Dump
    from iotnotify.output import OutputStyle
    from iotnotify.settings import Settings

REPEAT_INTERVAL = 1.0  # s between --repeat's messages unless --interval says


@click.command("keys", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify --profile local keys
  iotnotify keys --json | jq -r .iotEndpoint
  eval "$(iotnotify keys --export)"
  iotnotify keys --url        # for MQTTX, MQTT Explorer, a browser: contains the session token
""")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's full JSON (includes the secrets).")
@click.option("--export", is_flag=True, help="Print `export AWS_...=` lines for eval (includes the secrets).")
@click.option("--show-secrets", is_flag=True, help="Show the secret key and session token.")
@click.option("--url", is_flag=True,
              help="Print a presigned wss://.../mqtt URL valid until the keys expire, for any MQTT-over-WebSocket "
                   "client (it contains the session token: a secret).")
@click.pass_context
def keys_command(ctx: click.Context, /, as_json: bool, export: bool, show_secrets: bool, url: bool,
                 **flags: Any) -> None:
    """Fetch temporary keys (or reuse cached ones) and show them; secrets are redacted."""
    from iotnotify.keys import view as keys_view

    if sum((as_json, export, url)) > 1:
        raise errors.UsageError("--json, --export and --url cannot be used together")
    source = source_of(resolve_settings(ctx))
    temporary = source.get()
    if as_json:
        click.echo(keys_view.as_json(temporary))
    elif export:
        click.echo(keys_view.as_exports(temporary))
    elif url:
        from iotnotify.keys.presign import presigned_url

        click.echo(presigned_url(temporary))
    else:
        click.echo(keys_view.as_text(temporary, source.name, show_secrets))


@click.command("send", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify send alerts/disk 'disk 91% full'
  iotnotify send -f report.json reports/nightly
  tail -F app.log | iotnotify send -l logs/app     # one message per line, sent as lines arrive
  iotnotify send status/web up --repeat 0 --interval 60      # a heartbeat a minute until stopped
  iotnotify send --qos 0 metrics/cpu "$(uptime)"
  iotnotify send -l metrics/raw --no-id < samples.txt       # no iotnotify-id property on each (MQTT 5)
  iotnotify send deploy/web v42 --sign ci          # signed with key ci (iotnotify keygen ci); see --verify
  iotnotify send orders/new -f order.json --content-type application/json --user-property source=cron
  iotnotify send jobs/start go --response-topic jobs/done --correlation-data hex:0a1b --message-expiry 60
  iotnotify subscribe 'orders/#' --json > capture.jsonl; iotnotify send --records -f capture.jsonl  # replay
  tail -F app.log | iotnotify send -l logs/app --will-topic status/app --will-message down --keepalive 30
  HTTPS_PROXY=http://proxy:3128 iotnotify send alerts/x hi --debug     # or --proxy URL""")
@click.argument("topic", required=False)
@click.argument("message", required=False)
@click.option(*SEND["message"], "message_opt", metavar="TEXT", help="The message (like mosquitto_pub -m).")
@click.option(*SEND["file"], type=click.File("rb"),
              help="Send the contents of FILE as one message (with --records: the records in FILE).")
@click.option(*SEND["stdin"], is_flag=True, help="Send all of standard input as one message.")
@click.option(*SEND["lines"], is_flag=True, help="Send each line of standard input as a message.")
@click.option("--records", is_flag=True,
              help="Replay JSON records (subscribe --json, tail --save), one per line of stdin or -f FILE, each to "
                   "its own topic with its QoS, retain flag and properties (TOPIC: for records without one).")
@click.option(*SEND["retain"], is_flag=True, help="Ask the broker to retain the message.")
@click.option(*SEND["timeout"], type=Seconds(open_low=False), default=30.0, show_default=True, metavar="S",
              help="Seconds to wait for acknowledgements after the input ends.")
@click.option(*SEND["failed"], type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the messages not delivered to FILE, one per line (retry with send -l < FILE; "
                   "with --records, the records: retry with send --records -f FILE).")
@click.option("--repeat", type=click.IntRange(0, MAX_COUNT), metavar="N",
              help="Send the message N times over one connection, one every --interval (0: until interrupted): "
                   "a heartbeat.")
@click.option("--interval", type=Seconds(), metavar="S",
              help=f"With --repeat: seconds from one message to the next (default {REPEAT_INTERVAL:g}).")
@click.option("--connections", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Spread the messages over N connections (AWS IoT Core takes 100 publishes/s per connection); "
                   "order is kept per connection only.")
@click.option("--no-id", is_flag=True,
              help="Do not give each message a random `iotnotify-id` user property (MQTT 5), by which subscribe, "
                   "on and respond --dedupe drop the duplicates QoS 1 may deliver.")
@sign_option
@click.option("--sender", metavar="NAME", envvar="IOTNOTIFY_SENDER", show_envvar=True,
              help="Name the sender in a user property `iotnotify-sender` (MQTT 5), for wait --from: what the sender "
                   "says, not proven (--sign proves it).")
@click.option("--no-agent", is_flag=True, envvar="IOTNOTIFY_NO_AGENT", show_envvar=True,
              help="Connect by itself even when an agent serves these settings (as with --sign).")
@setting_option("persist")
@click.option(*SEND["via"], type=click.Choice(VIAS), default="auto", show_default=True, envvar="IOTNOTIFY_VIA",
              show_envvar=True,
              help="Publish over an MQTT connection, or over HTTPS requests (AWS IoT Core's POST /topics/...: two "
                   "round trips for one message, MQTT's four). auto: a running agent, else HTTPS for one message "
                   "without a will, properties or client id, else MQTT.")
@property_options
@will_options
@mqtt_options
@connection_options
@click.pass_context
def send_command(ctx: click.Context, /, topic: str, message: str | None, message_opt: str | None, file: BinaryIO | None,
         stdin: bool, lines: bool, records: bool, retain: bool, timeout: float, failed: str | None, repeat: int | None,
         interval: float | None, connections: int, no_id: bool, sign: str | None, sender: str | None,
         no_agent: bool, via: str, qos: int, **flags: Any) -> None:
    """Publish MESSAGE to TOPIC; exit 0 only once the broker acknowledged every QoS 1 message."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.send import send

    end_quickly()  # its connections are closed before it returns
    if failed == "":
        raise errors.UsageError("--failed needs a file name")
    payloads = send_payloads(topic, message, message_opt, file, stdin, lines, records, sys.stdin.buffer)
    if repeat is not None or interval is not None:
        payloads = _repeated(payloads, repeat, interval)
    settings = resolve_settings(ctx)
    properties = properties_of(flags, settings.protocol, sender)
    signer = signer_of(sign, settings.protocol, no_id, properties)
    what = "line" if records else "message"

    def rejected(index: int, error: errors.IotNotifyError) -> None:
        note(f"iotnotify: {what} {index} not sent: {error}")

    will = will_of(flags, settings.protocol)
    outgoing = Outgoing(topic, payloads, qos, retain, timeout, failed, properties, records, connections, will,
                        ids=not no_id, signer=signer)
    source = None  # one for every way: keys fetched once
    for way, more in route(outgoing, via, not no_agent, lambda: settings):
        if way == AGENT:
            if _through_agent(settings, outgoing, what):
                return
            continue
        source = source or source_of(settings)
        try:
            send(source, ConnectOptions.from_settings(settings, will=will, https=way == HTTPS), outgoing, rejected,
                 fallback=more)
        except errors.HttpsUnsupported as e:
            if not more:
                raise
            from iotnotify import trace

            trace.log.debug("%s: over MQTT instead", e)
        else:
            return


def send_payloads(topic: str | None, message: str | None, message_opt: str | None, file: BinaryIO | None,
                  stdin: bool, lines: bool, records: bool, stdin_stream: BinaryIO) -> Iterable[bytes]:
    """What `send` publishes, from its arguments and options (UsageError for what does not make one
    send); stdin's lines as they come for -l and --records."""
    from iotnotify.payloads import payloads_from, read_lines

    if message is not None and message_opt is not None:
        raise errors.UsageError("give the message once: as MESSAGE or with -m")
    if records:
        if message is not None or message_opt is not None or stdin or lines:
            raise errors.UsageError("--records reads records from stdin or -f FILE: no MESSAGE, -m, -s or -l")
        return read_lines(file or stdin_stream)
    if topic is None:
        raise errors.UsageError("TOPIC is needed (it is optional only with --records)")
    return payloads_from(message if message is not None else message_opt, file, stdin, lines, stdin_stream)


def _repeated(payloads: Iterable[bytes], repeat: int | None, interval: float | None) -> Iterable[bytes]:
    """The one message of `payloads`, `repeat` times (--repeat, --interval)."""
    from iotnotify.payloads import repeated

    if repeat is None:
        raise errors.UsageError("--interval goes with --repeat N")
    if not isinstance(payloads, list) or len(payloads) != 1:
        raise errors.UsageError("--repeat sends one message again and again: MESSAGE, -m, -f FILE or -s, not -l or "
                                "--records")
    return repeated(payloads[0], repeat, REPEAT_INTERVAL if interval is None else interval)


def _through_agent(settings: Settings, outgoing: Outgoing, what: str) -> bool:
    """Whether the agent for `settings` (started first for --persist) took the send; False if none did."""
    from iotnotify import trace
    from iotnotify.agent import use
    from iotnotify.agent.client import Unavailable

    try:
        use.send(settings, outgoing, lambda index, text: note(f"iotnotify: {what} {index} not sent: {text}"),
                 debug=trace.on())
    except use.UnsafeFolder as e:
        note(f"iotnotify: warning: {e}")
    except Unavailable:
        pass
    else:
        return True
    return False


@click.command("subscribe", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify subscribe 'alerts/#' -v
  iotnotify subscribe jobs/done -C 1 -W 60 && echo finished
  iotnotify subscribe --json 'sensors/+/temp' | jq .payload
  iotnotify subscribe 'sensors/#' --format '{time} {topic} {json}'
  iotnotify subscribe config/app --retained-only        # print what is retained, then exit
  r=$(mktemp -u); iotnotify subscribe t --ready-file "$r" & until [ -e "$r" ]; do sleep 0.1; done; iotnotify send t hi
  iotnotify subscribe 'jobs/#' --will-topic status/worker1 --will-message offline --will-retain --keepalive 30
  iotnotify subscribe 'rpc/#' --format '{topic} {correlation_data} {user_properties}' --proxy http://proxy:3128
  iotnotify subscribe 'sensors/#' --connections 4      # past AWS's 100 messages/s per connection
  iotnotify subscribe 'jobs/#' --share workers -C 1     # one of the group's subscribers gets each message
  iotnotify subscribe 'files/#' --dump inbox/ -0 | xargs -0 -n1 ./process   # a file per payload
  iotnotify subscribe 'logs/#' -0 | while IFS= read -r -d '' msg; do ...; done   # payloads of several lines
  iotnotify subscribe 'logs/#' -T 'logs/debug/#' --grep '(?i)error|fatal'   # all but debug: errors only
  iotnotify subscribe 'orders/#' -q 1 --session shop --dedupe 10m   # a QoS 1 message delivered twice: once
  iotnotify subscribe 'deploy/#' --verify trusted.keys --json    # only signed ones (send --sign), signed_by""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER...", shell_complete=topic_names)
@output_options
@click.option("--dump", metavar="DIR", type=click.Path(file_okay=False),
              help="Write each payload to a file of its own in DIR (made if missing), named by a sequence number "
                   "and the topic; print the file's path (with --json, write the JSON record beside it as .json).")
@click.option("--no-retained", is_flag=True, help="Skip messages the broker had retained.")
@click.option("--retained-only", is_flag=True,
              help="Print only the retained messages, then exit (at the first live message, or 1 s without any).")
@click.option("--count", "-C", type=click.IntRange(1, MAX_COUNT), metavar="N", help="Exit 0 after N messages.")
@click.option("--timeout", "-W", type=Seconds(), metavar="S",
              help="Stop after S seconds; exit 7 if fewer than --count messages (or any --count) arrived.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Do not print `subscribed` or other status lines on stderr.")
@click.option("--max-reconnects", type=click.IntRange(min=0), metavar="N",
              help="Exit 5 after N failed reconnection attempts in a row (default: keep trying).")
@click.option("--no-reconnect", is_flag=True, help="Exit 5 as soon as the connection is lost.")
@click.option("--share", metavar="GROUP", callback=lambda _c, _p, v: v if v is None else check_share_name(v),
              help="Subscribe as a member of shared subscription GROUP ($share/GROUP/FILTER): each message "
                   "goes to one member of the group.")
@selection_options
@verify_options
@dedupe_option
@click.option("--connections", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Subscribe over N connections sharing the filters (--share GROUP, else a group of their "
                   "own): AWS IoT Core delivers at most 100 messages a second to one connection.")
@long_running_options
@will_options
@mqtt_options
@connection_options
@click.pass_context
def subscribe_command(ctx: click.Context, /, filters: tuple[str, ...], dump: str | None, no_retained: bool, retained_only: bool, count: int | None,
                      timeout: float | None, ready_file: str | None, quiet: bool, max_reconnects: int | None,
                      no_reconnect: bool, share: str | None, exclude: tuple[str, ...], grep: str | None,
                      verify: str | None, verify_window: float | None, dedupe: float | None, connections: int, qos: int, session: str | None,
                      session_expiry: int, reconnect_delay: tuple[float, float], partial: bool, **flags: Any) -> None:
    """Print each message on FILTER... to stdout, one line per message, flushed at once."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.output import MessageWriter, formatter
    from iotnotify.selection import selection_of
    from iotnotify.subscribe import check_enough, mark_ready, stream, subscribe, subscribe_shared

    style = style_of(flags)
    selection = selection_of(exclude, grep)
    duplicates = dedupe_of(dedupe, style.verbose)
    retained = _retained_of(no_retained, retained_only, bool(share) or connections > 1 or
                            any(f.startswith(SHARE) for f in filters))
    settings = resolve_settings(ctx)
    verifier = verifier_of(verify, verify_window, settings.protocol)
    dumped = _dump(dump, style) if dump is not None else None
    writer = MessageWriter(dumped or formatter(style), sys.stdout.buffer)
    options = ConnectOptions.from_settings(settings, session, session_expiry, reconnect_delay,
                                           will_of(flags, settings.protocol), long_running=True)
    more: dict[str, Any] = {"on_state": state_notes(quiet), "max_reconnects": 0 if no_reconnect else max_reconnects,
                            "on_refused": warn if partial else None, "on_dropped": warn_reconnecting,
                            "on_busy": warn_text, "on_notice": warn_text,
                            "patient": timeout is None}  # -W: the SUBACK within 20 s, as a one-shot command's
    connection: Any
    try:
        if share or connections > 1:  # a group of their own: each message to one of these connections
            group = share or f"iotnotify-{os.urandom(4).hex()}"
            connection, inbox = subscribe_shared(source_of(settings), options, list(filters), qos, connections,
                                                 group, **more)
        else:
            connection, inbox = subscribe(source_of(settings), options, list(filters), qos,
                                          retained_only=retained_only, **more)
    except BaseException:
        if dumped is not None:
            dumped.close()
        raise
    with connection:
        ready_note(quiet)
        mark_ready(ready_file)
        try:
            if style.cheap and timeout is None and count is None and retained == "all" and not selection \
                    and dumped is None and duplicates is None and verifier is None:
                inbox.deliver_to(writer.render, writer.write_out)  # written where it arrives
                inbox.wait()  # ends only by raising: the connection's end, a closed pipe
            else:
                writer.write_all(stream(inbox, timeout, count, retained, selection, duplicates, verifier),
                                 burst_over=inbox.empty)
        except BrokenPipeError:
            quiet_stdout()
        except KeyboardInterrupt:
            inbox.stop()  # what was rendered is written, and counted
            raise errors.Interrupted(f"interrupted after {counted(writer.count, 'message')}") from None
        finally:
            inbox.stop()  # nothing more is taken (a message waiting for room goes in): the connection can close
            if dumped is not None:
                dumped.close()
            refused_note(verifier)
    check_enough(writer.count, count, timeout, retained)


def _retained_of(no_retained: bool, retained_only: bool, shared: bool) -> str:
    """What subscribe does with retained messages: "all", "without" (--no-retained) or "only"
    (--retained-only, which `shared` subscriptions never get)."""
    if no_retained and retained_only:
        raise errors.UsageError("--no-retained and --retained-only cannot be combined")
    if retained_only and shared:
        raise errors.UsageError("--retained-only: shared subscriptions get no retained messages")
    return "only" if retained_only else "without" if no_retained else "all"


def _dump(folder: str, style: OutputStyle) -> Dump:
    """--dump DIR: what writes each message to its file and gives the line to print; UsageError
    for output flags that do not go with it (--json writes a sidecar)."""
    from iotnotify.dump import Dump

    if style.verbose or style.template is not None or style.pretty or not style.end:
        raise errors.UsageError("--dump prints each file's path: not with -v, --format, --pretty or -N")
    return Dump(folder, style.json_lines, style.end)
