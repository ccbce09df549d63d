"""`ping`: a health check of the keys endpoint and the broker."""

from __future__ import annotations

import json
from typing import Any

import click

from iotnotify import errors
from iotnotify.cli.completers import topic_names
from iotnotify.cli.options import (
    CONTEXT,
    Seconds,
    connection_options,
    mqtt_options,
    resolve_settings,
    source_of,
)
from iotnotify.shown import shown
from iotnotify.words import counted

MAX_PINGS = 100_000  # each round trip is kept for the percentiles

@click.command("ping", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify ping
  iotnotify --profile aws ping -c 10 --json | jq .p99_ms
  iotnotify ping -c 1 -W 10 >/dev/null || alert 'notifications are down'   # monitoring""")
@click.option("--count", "-c", type=click.IntRange(1, MAX_PINGS), default=3, show_default=True, metavar="N",
              help="Round trips to time (publish, then receive it back).")
@click.option("--interval", type=Seconds(open_low=False), default=0.2, show_default=True, metavar="S",
              help="Seconds between round trips.")
@click.option("--timeout", "-W", type=Seconds(), default=5.0, show_default=True, metavar="S",
              help="Seconds to wait for each round trip.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every figure, at the end.")
@click.option("--topic", metavar="TOPIC", shell_complete=topic_names,
              help="Ping on TOPIC (the keys must allow publishing and subscribing to it); default: a topic of its "
                   "own under a PREFIX/* the keys allow.")
@mqtt_options
@connection_options
@click.pass_context
def ping_command(ctx: click.Context, /, count: int, interval: float, timeout: float, as_json: bool,
                 topic: str | None, qos: int, **_flags: Any) -> None:
    """Time the keys (cached or fetched), the connection, the subscription and N round trips on a
    topic the keys allow (a topic of its own under a PREFIX/* of theirs, else --topic or the
    profile's); then min/p50/p99/max. Exit 0 when every ping came back, 7 if some did not."""
    from iotnotify.mqtt import ConnectOptions
    from iotnotify.ping import ping

    settings = resolve_settings(ctx)

    def ready(report: Any) -> None:
        click.echo(f"PING {shown(report.host)} on {shown(report.topic)}\n"
                   f"keys       {report.keys_ms:.1f} ms ({'cached' if report.keys_cached else 'fetched'})\n"
                   f"connect    {report.connect_ms:.1f} ms\n"
                   f"subscribe  {report.subscribe_ms:.1f} ms")

    def each(number: int, ms: float | None) -> None:
        click.echo(f"reply {number}: {ms:.1f} ms" if ms is not None else
                   f"reply {number}: no answer within {timeout:g} s")

    report = ping(source_of(settings), ConnectOptions.from_settings(settings), topic, count, interval,
                  timeout, qos, on_ready=None if as_json else ready, on_round_trip=None if as_json else each)
    if as_json:
        click.echo(json.dumps(report.record()))
    else:
        summary = report.summary()
        figures = "/".join(f"{summary[k]:.1f}" for k in ("min", "p50", "p99", "max")) if summary else "-"
        click.echo(f"{len(report.round_trips)} sent, {len(report.answered)} received; "
                   f"round trip min/p50/p99/max = {figures} ms")
    lost = len(report.round_trips) - len(report.answered)
    if lost:
        raise errors.ReceiveTimeout(f"{lost} of {counted(count, 'ping')} got no answer within {timeout:g} s")
