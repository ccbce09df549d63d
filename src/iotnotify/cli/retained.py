"""`retained list|get|clear`: the broker's retained messages, over MQTT, or with --aws through AWS
IoT's API (which can list them under a wildcard, as MQTT on AWS IoT Core cannot)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import CONTEXT, connection_options, mqtt_options, resolve_settings, source_of
from iotnotify.cli.terminal import note, quiet_stdout
from iotnotify.topics import check_filter


@click.group("retained", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify retained get config/app
  iotnotify retained clear 'config/#' --dry-run       # a broker that is not AWS, or with --aws
  iotnotify --aws retained list 'devices/+/state' --json""")
def retained_group() -> None:
    """The broker's retained messages: list, get, clear."""


def _store(ctx: click.Context) -> Any:
    """Where the retained messages are looked at: AWS IoT's API with --aws, else over MQTT."""
    settings = resolve_settings(ctx)
    if settings.aws:
        from iotnotify.retained.aws import AwsRetained

        return AwsRetained(settings.aws_profile)
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.retained.mqtt import MqttRetained

    return MqttRetained(source_of(settings), ConnectOptions.from_settings(settings))


@retained_group.command("list", context_settings=CONTEXT)
@click.argument("topic_filter", default="#", metavar="[FILTER]", shell_complete=topic_names)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: over MQTT the subscribe --json records, with --aws "
                                                       "topic, payload_size, qos, last_modified.")
@mqtt_options
@connection_options
@click.pass_context
def list_command(ctx: click.Context, /, topic_filter: str, as_json: bool, **_flags: Any) -> None:
    """Print the topic of each retained message under FILTER (default `#`), one per line."""
    check_filter(topic_filter, aws=False)
    store = _store(ctx)
    try:
        for item in store.find(topic_filter):
            click.echo(json.dumps(_record(item), ensure_ascii=False) if as_json else item.topic)
    except BrokenPipeError:
        quiet_stdout()
    finally:
        store.close()


def _record(item: Any) -> dict[str, object]:
    """The JSON line of a retained message found over MQTT (a Message), or listed by AWS (Retained)."""
    from iotnotify.messages import Message
    from iotnotify.output import as_record

    return as_record(item) if isinstance(item, Message) else item.record()


@retained_group.command("get", context_settings=CONTEXT)
@click.argument("topic", shell_complete=topic_names)
@click.option("--json", "as_json", is_flag=True, help="Print the subscribe --json record.")
@mqtt_options
@connection_options
@click.pass_context
def get_command(ctx: click.Context, /, topic: str, as_json: bool, **_flags: Any) -> None:
    """Print the payload retained on TOPIC; exit 7 if nothing is retained there."""
    from iotnotify.output import as_record
    from iotnotify.topics import check_topic

    check_topic(topic, aws=False)
    store = _store(ctx)
    try:
        message = store.get(topic)
    finally:
        store.close()
    if message is None:
        raise errors.ReceiveTimeout(f"no retained message on {topic!r}")
    if as_json:
        click.echo(json.dumps(as_record(message), ensure_ascii=False))
    else:
        sys.stdout.buffer.write(message.payload + b"\n")
        sys.stdout.flush()


@retained_group.command("clear", context_settings=CONTEXT)
@click.argument("topic_filter", metavar="FILTER", shell_complete=topic_names)
@click.option("--dry-run", is_flag=True, help="List what would be cleared; clear nothing.")
@mqtt_options
@connection_options
@click.pass_context
def clear_command(ctx: click.Context, /, topic_filter: str, dry_run: bool, **_flags: Any) -> None:
    """Clear the retained messages under FILTER (an empty retained message to each topic), printing
    each topic, then a count on stderr."""
    check_filter(topic_filter, aws=False)
    store = _store(ctx)
    try:
        topics = [item.topic for item in store.find(topic_filter)]
        for topic in topics:
            click.echo(topic)
        if not dry_run and topics:
            store.clear(topics)
    finally:
        store.close()
    plural = "" if len(topics) == 1 else "s"
    note(f"{len(topics)} retained message{plural} " + ("would be cleared (--dry-run)" if dry_run else "cleared"))
