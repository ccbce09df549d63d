"""`keys`, `send`, `subscribe`: the commands that use keys and the broker."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO

import click

from iotnotify import errors
from iotnotify.cli import (
    CONTEXT,
    _connection_flags,
    _long_running_flags,
    _mqtt_flags,
    _note,
    _options,
    _quiet_stdout,
    _settings,
    _source,
    cli,
)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify --profile local keys
  iotnotify keys --json | jq -r .iotEndpoint
  eval "$(iotnotify keys --export)"
""")
@_connection_flags
@click.option("--json", "as_json", is_flag=True, help="Print the endpoint's full JSON (includes the secrets).")
@click.option("--export", is_flag=True, help="Print `export AWS_...=` lines for eval (includes the secrets).")
@click.option("--show-secrets", is_flag=True, help="Show the secret key and session token.")
@click.pass_context
def keys(ctx: click.Context, as_json: bool, export: bool, show_secrets: bool, **flags: Any) -> None:
    """Fetch temporary keys (or reuse cached ones) and show them; secrets are redacted."""
    from iotnotify import keys_view

    if as_json and export:
        raise click.UsageError("--json and --export cannot be used together")
    source = _source(_settings(ctx, **flags))
    temporary = source.get()
    if as_json:
        click.echo(keys_view.as_json(temporary))
    elif export:
        click.echo(keys_view.as_exports(temporary))
    else:
        click.echo(keys_view.as_text(temporary, source.name, show_secrets))


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify send alerts/disk 'disk 91% full'
  iotnotify send -f report.json reports/nightly
  tail -F app.log | iotnotify send -l logs/app     # one message per line, sent as lines arrive
  iotnotify send --qos 0 metrics/cpu "$(uptime)" """)
@click.argument("topic")
@click.argument("message", required=False)
@click.option("--message", "-m", "message_opt", metavar="TEXT", help="The message (like mosquitto_pub -m).")
@click.option("--file", "-f", type=click.File("rb"), help="Send the contents of FILE as one message.")
@click.option("--stdin", "-s", is_flag=True, help="Send all of standard input as one message.")
@click.option("--lines", "-l", is_flag=True, help="Send each line of standard input as a message.")
@click.option("--retain", "-r", is_flag=True, help="Ask the broker to retain the message.")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True, metavar="S",
              help="Seconds to wait for acknowledgements after the input ends.")
@click.option("--failed", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write the messages not delivered to FILE, one per line (retry with send -l < FILE).")
@click.option("--connections", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Spread the messages over N connections (AWS IoT Core takes 100 publishes/s per connection); "
                   "order is kept per connection only.")
@_mqtt_flags
@_connection_flags
@click.pass_context
def send(ctx: click.Context, topic: str, message: str | None, message_opt: str | None, file: BinaryIO | None,
         stdin: bool, lines: bool, retain: bool, timeout: float, failed: str | None, connections: int, qos: int,
         **flags: Any) -> None:
    """Publish MESSAGE to TOPIC; exit 0 only once the broker acknowledged every QoS 1 message."""
    from iotnotify.messages import payloads_from
    from iotnotify.send import send as send_messages

    if message is not None and message_opt is not None:
        raise click.UsageError("give the message once: as MESSAGE or with -m")
    payloads = payloads_from(message if message is not None else message_opt, file, stdin, lines, sys.stdin.buffer)
    settings = _settings(ctx, **flags)

    def rejected(index: int, error: errors.UsageError) -> None:
        _note(f"iotnotify: message {index} not sent: {error}")

    send_messages(_source(settings), _options(settings), topic, payloads, qos, retain, timeout, rejected,
                  Path(failed) if failed else None, connections)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify subscribe 'alerts/#' -v
  iotnotify subscribe jobs/done -C 1 -W 60 && echo finished
  iotnotify subscribe --json 'sensors/+/temp' | jq .payload
  iotnotify subscribe 'sensors/#' --format '{time} {topic} {json}'
  iotnotify subscribe config/app --retained-only        # print what is retained, then exit
  iotnotify subscribe t --ready-file /tmp/ready & while [ ! -e /tmp/ready ]; do sleep 0.1; done; iotnotify send t hi""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER...")
@click.option("--verbose", "-v", is_flag=True, help="Print the topic before each payload.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines: topic, payload, qos, retain, time.")
@click.option("--format", "-F", "template", metavar="TEMPLATE",
              help="Print each message with a template: {topic} {payload} {qos} {retain} {time} {json} {base64} {hex}.")
@click.option("--pretty", is_flag=True, help="Indent JSON payloads.")
@click.option("-N", "no_newline", is_flag=True, help="Do not print a newline after each message.")
@click.option("--no-retained", is_flag=True, help="Skip messages the broker had retained.")
@click.option("--retained-only", is_flag=True,
              help="Print only the retained messages, then exit (at the first live message, or 1 s without any).")
@click.option("--count", "-C", type=click.IntRange(min=1), metavar="N", help="Exit 0 after N messages.")
@click.option("--timeout", "-W", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Stop after S seconds; exit 7 if fewer than --count messages (or any --count) arrived.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Do not print `subscribed` or other status lines on stderr.")
@click.option("--max-reconnects", type=click.IntRange(min=0), metavar="N",
              help="Exit 5 after N failed reconnection attempts in a row (default: keep trying).")
@click.option("--no-reconnect", is_flag=True, help="Exit 5 as soon as the connection is lost.")
@_long_running_flags
@_mqtt_flags
@_connection_flags
@click.pass_context
def subscribe(ctx: click.Context, filters: tuple[str, ...], verbose: bool, as_json: bool, template: str | None,
              pretty: bool, no_newline: bool, no_retained: bool, retained_only: bool, count: int | None,
              timeout: float | None, ready_file: str | None, quiet: bool, max_reconnects: int | None,
              no_reconnect: bool, qos: int, **flags: Any) -> None:
    """Print each message on FILTER... to stdout, one line per message, flushed at once."""
    import itertools

    from iotnotify import subscribe as receiving
    from iotnotify.output import OutputStyle, formatter

    styles = [name for name, given in (("--json", as_json), ("--format", template is not None),
                                       ("-v", verbose and template is not None)) if given]
    if len(styles) > 1 or (pretty and (as_json or template is not None)):
        raise click.UsageError("--json, --format and -v/--pretty cannot be combined")
    if no_retained and retained_only:
        raise click.UsageError("--no-retained and --retained-only cannot be combined")
    render = formatter(OutputStyle(as_json, verbose, template, pretty, not no_newline))
    settings = _settings(ctx, **flags)
    source = _source(settings)
    lost = False

    def state_changed(state: str, attempt: int) -> None:  # from the MQTT threads: state changes on stderr
        nonlocal lost
        if state == "reconnecting":
            _note("iotnotify: connection lost, reconnecting" + (f" (attempt {attempt})" if attempt else ""), quiet)
            lost = True
        elif state == "connected" and lost:
            _note("iotnotify: reconnected", quiet)
            lost = False

    def refused(error: errors.IotNotifyError) -> None:  # --partial: say which, and go on with the rest
        _note(f"iotnotify: warning: {error}")

    connection, inbox = receiving.subscribe(source, _options(settings, flags),
                                            list(filters), qos, on_state=state_changed,
                                            max_reconnects=0 if no_reconnect else max_reconnects,
                                            on_refused=refused if flags.get("partial") else None,
                                            retained_only=retained_only)
    received = 0
    try:
        _note("subscribed", quiet)
        if ready_file:
            try:
                open(ready_file, "a").close()
            except OSError as e:
                raise errors.UsageError(f"cannot create --ready-file {ready_file}: {e.strerror}") from None
        messages = inbox.messages(timeout, receiving.RETAINED_IDLE if retained_only else None)
        if no_retained:
            messages = receiving.without_retained(messages)
        elif retained_only:
            messages = receiving.retained_only(messages)
        write, flush = sys.stdout.buffer.write, sys.stdout.buffer.flush
        for message in itertools.islice(messages, count):
            write(render(message))
            received += 1
            if inbox.empty():  # the end of a burst: out now; within one, a write per buffer, not per message
                flush()
        flush()
    except BrokenPipeError:
        _quiet_stdout()
    except KeyboardInterrupt:
        raise errors.Interrupted(f"interrupted after {received} messages") from None
    finally:
        connection.disconnect()
    if timeout is not None and not retained_only and (count is None or received < count):
        expected = f" of {count}" if count is not None else ""
        raise errors.ReceiveTimeout(f"received {received}{expected} messages within {timeout:g} s")
