"""`agent start|stop|status`: one connection kept open for the `send`s of other processes."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from iotnotify import errors
from iotnotify.cli.options import CONTEXT, Duration, connect_options, connection_options, resolve_settings, source_of
from iotnotify.cli.terminal import note
from iotnotify.settings import Settings


@click.group("agent", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify --profile local agent start --detach --idle 10m
  for i in $(seq 50); do iotnotify --profile local send jobs/progress "$i"; done   # one connection, kept
  iotnotify --profile local agent status
  iotnotify --profile local agent stop
  iotnotify --profile local send --persist 10m alerts/x hi    # starts one if none runs""")
def agent_group() -> None:
    """Keep one connection open and lend it to `send` in other processes (as ssh's ControlPersist).

    A `send` with the same settings uses a running agent by itself (--no-agent: not); it still
    exits 0 only once the broker acknowledged every QoS 1 message. The agent listens on a Unix
    socket only this user can reach, and renews its keys before they expire.
    """


def _settings(ctx: click.Context, from_stdin: bool = False) -> Settings:
    if from_stdin:  # started by `agent start --detach` or `send --persist`: the caller's settings
        return Settings.from_json(json.loads(sys.stdin.buffer.read()))
    return resolve_settings(ctx)


@agent_group.command("start", context_settings=CONTEXT)
@click.option("--detach", "-d", is_flag=True, help="Run in the background; return once it serves.")
@click.option("--idle", type=Duration(), metavar="DURATION",
              help="Exit after DURATION without a send (90s, 10m, 1h; default: run until stopped).")
@click.option("--settings-from-stdin", is_flag=True, hidden=True)
@connect_options
@connection_options
@click.pass_context
def start_command(ctx: click.Context, /, detach: bool, idle: float | None, settings_from_stdin: bool,
                  **_flags: Any) -> None:
    """Connect, then serve `send`s for these settings until stopped (Ctrl-C, `agent stop`, --idle)."""
    from iotnotify.agent.server import Agent
    from iotnotify.agent.use import locate, remember
    from iotnotify.mqtt import ConnectOptions

    settings = _settings(ctx, settings_from_stdin)
    agent_identity, path = locate(settings, create=True)
    if detach:
        from iotnotify import trace
        from iotnotify.agent.spawn import start_detached

        pid = start_detached(settings, idle, path, debug=trace.on())
        remember(settings, agent_identity)
        click.echo(f"agent running (pid {pid}), socket {path}")
        return
    source = source_of(settings)
    agent = Agent(source, ConnectOptions.from_settings(settings), agent_identity, path, idle,
                  {"profile": settings.profile or "default", "keys": source.name})
    agent.start()
    if not settings_from_stdin:
        remember(settings, agent_identity)
    note(f"iotnotify: agent connected to {agent.status()['broker']}, serving {path} (pid {agent.status()['pid']})"
         + ("" if settings_from_stdin else "; Ctrl-C stops it"))
    try:
        agent.serve()
    except KeyboardInterrupt:
        pass
    note("iotnotify: agent stopped")


def _agents(ctx: click.Context, every: bool) -> list[Any]:
    """The sockets to ask: every agent's, or the one for the settings given."""
    from iotnotify.agent import sockets
    from iotnotify.agent.use import locate

    return sockets() if every else [locate(resolve_settings(ctx))[1]]


@agent_group.command("status", context_settings=CONTEXT)
@click.option("--all", "every", is_flag=True, help="Every agent of yours, whatever its settings.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per agent.")
@connect_options
@connection_options
@click.pass_context
def status_command(ctx: click.Context, /, every: bool, as_json: bool, **_flags: Any) -> None:
    """Say whether an agent serves these settings, and what it holds; exit 5 if none does."""
    from iotnotify.agent.client import Unavailable, status

    found = 0
    for path in _agents(ctx, every):
        try:
            about = status(path)
        except Unavailable:
            continue
        found += 1
        if as_json:
            click.echo(json.dumps(about))
        else:
            click.echo("\n".join(f"{key}: {value}" for key, value in about.items() if value is not None)
                       + ("\n" if every else ""))
    if not found:
        raise errors.ConnectError("no agent is running" + ("" if every else " for these settings"))


@agent_group.command("stop", context_settings=CONTEXT)
@click.option("--all", "every", is_flag=True, help="Stop every agent of yours, whatever its settings.")
@connect_options
@connection_options
@click.pass_context
def stop_command(ctx: click.Context, /, every: bool, **_flags: Any) -> None:
    """Stop the agent for these settings once the sends under way end; exit 5 if none runs."""
    from iotnotify.agent.client import Unavailable, peer_pid_alive, stop

    stopped = []
    for path in _agents(ctx, every):
        try:
            stopped.append((stop(path), path))
        except Unavailable:
            continue
    if not stopped:
        raise errors.ConnectError("no agent is running" + ("" if every else " for these settings"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(peer_pid_alive(pid) for pid, _path_ in stopped):
        time.sleep(0.02)
    for pid, _ in stopped:
        click.echo(f"agent stopped (pid {pid})")
