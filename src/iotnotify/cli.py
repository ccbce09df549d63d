"""The `iotnotify` command: parse flags, call the core, print results, map errors to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

import click

from iotnotify import __version__, errors
from iotnotify.settings import Settings, resolve

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


_AWS_FLAGS = [
    click.option("--aws", is_flag=True, default=None,
                 help="No keys endpoint: use your AWS credentials (boto3's chain) [env IOTNOTIFY_AWS=1]."),
    click.option("--aws-profile", metavar="NAME", help="AWS profile for --aws (implies --aws) [env IOTNOTIFY_AWS_PROFILE]."),
    click.option("--aws-role", metavar="ROLE",
                 help="With --aws: assume this notifications role with the endpoint's session policy "
                      "[env IOTNOTIFY_AWS_ROLE]."),
]


def _connection_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Flags every command that needs keys takes (they override the same flags before the command)."""
    for decorator in reversed([
        click.option("--endpoint", metavar="URL", help="Keys endpoint URL [env IOTNOTIFY_ENDPOINT]."),
        click.option("--ca-file", metavar="PATH", help="CA bundle for a private broker [env IOTNOTIFY_CA_FILE]."),
        click.option("--no-cache", is_flag=True, default=None, help="Fetch new keys; do not use or save the cache."),
        *_AWS_FLAGS,
    ]):
        command = decorator(command)
    return command


def _mqtt_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Flags of the commands that connect to the broker."""
    for decorator in reversed([
        click.option("--protocol", type=click.Choice(["5", "3.1.1"]), default=None,
                     help="MQTT version (default 5) [env IOTNOTIFY_PROTOCOL]."),
        click.option("--client-id", "-i", metavar="ID",
                     help="MQTT client id (default: random iotnotify-...) [env IOTNOTIFY_CLIENT_ID]."),
        click.option("--qos", "-q", type=click.IntRange(0, 1), default=1, show_default=True,
                     help="Quality of service: 0 at most once, 1 at least once."),
    ]):
        command = decorator(command)
    return command


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    """Resolve settings: this command's flags, then the group's, then env, then the profile."""
    group = ctx.find_root().params
    merged = {name: flags.get(name) if flags.get(name) not in (None, False) else group.get(name)
              for name in ("endpoint", "ca_file", "no_cache", "protocol", "client_id", "aws", "aws_profile",
                           "aws_role")}
    merged["keys_timeout"] = group.get("keys_timeout")
    return resolve(merged, profile=group.get("profile"))


def _source(settings: Settings):  # type: ignore[no-untyped-def]
    from iotnotify.keys import key_source

    return key_source(settings.endpoint, settings.keys_timeout, use_cache=not settings.no_cache, aws=settings.aws,
                      aws_profile=settings.aws_profile, aws_role=settings.aws_role)


def _options(settings: Settings):  # type: ignore[no-untyped-def]
    from iotnotify.connection import ConnectOptions

    return ConnectOptions(protocol=settings.protocol, client_id=settings.client_id, ca_file=settings.ca_file)


def _note(message: str, quiet: bool = False) -> None:
    """A status line for people on stderr (never on stdout, which belongs to the data)."""
    if not quiet:
        click.echo(message, err=True)


@click.group(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify local                                  # start a broker and keys endpoint on loopback
  iotnotify --profile local subscribe 'demo/#' -v  # in another terminal
  iotnotify --profile local send demo/hello 'hi'
  iotnotify --endpoint https://ID.execute-api.REGION.amazonaws.com/iot/keys keys""")
@click.version_option(__version__, "--version", "-V", prog_name="iotnotify")
@click.option("--profile", "-p", metavar="NAME", help="Profile in the config file [env IOTNOTIFY_PROFILE].")
@click.option("--endpoint", metavar="URL", help="Keys endpoint URL [env IOTNOTIFY_ENDPOINT].")
@click.option("--ca-file", metavar="PATH", help="CA bundle for a private broker [env IOTNOTIFY_CA_FILE].")
@click.option("--no-cache", is_flag=True, default=None, help="Fetch new keys; do not use or save the cache.")
@click.option("--keys-timeout", type=float, metavar="S",
              help="Seconds to wait for the keys endpoint (default 10) [env IOTNOTIFY_KEYS_TIMEOUT].")
@_AWS_FLAGS[0]
@_AWS_FLAGS[1]
@_AWS_FLAGS[2]
def cli(**_flags: Any) -> None:
    """Real-time notifications over AWS IoT Core (MQTT over WebSocket, SigV4) from the command line.

    Settings come from flags, then IOTNOTIFY_* environment variables, then the profile
    (IOTNOTIFY_CONFIG or config.toml in the app dir; `default` unless --profile names another).
    """


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
@_mqtt_flags
@_connection_flags
@click.pass_context
def send(ctx: click.Context, topic: str, message: str | None, message_opt: str | None, file: BinaryIO | None,
         stdin: bool, lines: bool, retain: bool, timeout: float, qos: int, **flags: Any) -> None:
    """Publish MESSAGE to TOPIC; exit 0 only once the broker acknowledged every QoS 1 message."""
    from iotnotify.messages import payloads_from
    from iotnotify.send import send as send_messages

    if message is not None and message_opt is not None:
        raise click.UsageError("give the message once: as MESSAGE or with -m")
    payloads = payloads_from(message if message is not None else message_opt, file, stdin, lines, sys.stdin.buffer)
    settings = _settings(ctx, **flags)

    def rejected(index: int, error: errors.UsageError) -> None:
        _note(f"iotnotify: message {index} not sent: {error}")

    send_messages(_source(settings), _options(settings), topic, payloads, qos, retain, timeout, rejected)


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify subscribe 'alerts/#' -v
  iotnotify subscribe jobs/done -C 1 -W 60 && echo finished
  iotnotify subscribe --json 'sensors/+/temp' | jq .payload
  iotnotify subscribe t --ready-file /tmp/ready & while [ ! -e /tmp/ready ]; do sleep 0.1; done; iotnotify send t hi""")
@click.argument("filters", nargs=-1, required=True, metavar="FILTER...")
@click.option("--verbose", "-v", is_flag=True, help="Print the topic before each payload.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines: topic, payload, qos, retain, time.")
@click.option("--count", "-C", type=click.IntRange(min=1), metavar="N", help="Exit 0 after N messages.")
@click.option("--timeout", "-W", type=click.FloatRange(min=0, min_open=True), metavar="S",
              help="Stop after S seconds; exit 7 if fewer than --count messages (or any --count) arrived.")
@click.option("--ready-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Create PATH once the broker acknowledged the subscription.")
@click.option("--quiet", is_flag=True, help="Do not print `subscribed` or other status lines on stderr.")
@_mqtt_flags
@_connection_flags
@click.pass_context
def subscribe(ctx: click.Context, filters: tuple[str, ...], verbose: bool, as_json: bool, count: int | None,
              timeout: float | None, ready_file: str | None, quiet: bool, qos: int, **flags: Any) -> None:
    """Print each message on FILTER... to stdout, one line per message, flushed at once."""
    from iotnotify.output import formatter
    from iotnotify.subscribe import subscribe as open_subscription

    settings = _settings(ctx, **flags)
    connection, inbox = open_subscription(_source(settings), _options(settings), list(filters), qos)
    received = 0
    try:
        _note("subscribed", quiet)
        if ready_file:
            try:
                open(ready_file, "a").close()
            except OSError as e:
                raise errors.UsageError(f"cannot create --ready-file {ready_file}: {e.strerror}") from None
        write, flush = sys.stdout.buffer.write, sys.stdout.buffer.flush
        render = formatter(json_lines=as_json, verbose=verbose)
        for message in inbox.messages(count=count, timeout=timeout):
            write(render(message))
            flush()
            received += 1
    except BrokenPipeError:
        _quiet_stdout()
    except KeyboardInterrupt:
        raise errors.Interrupted(f"interrupted after {received} messages") from None
    finally:
        connection.disconnect()
    if timeout is not None and (count is None or received < count):
        expected = f" of {count}" if count is not None else ""
        raise errors.ReceiveTimeout(f"received {received}{expected} messages within {timeout:g} s")


def _quiet_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so exit does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@cli.command(context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify local                       # then, elsewhere: iotnotify --profile local send demo hi
  iotnotify local --port 19443 --keys-port 19080 --mqtt-port 19883""")
@click.option("--port", type=click.IntRange(1, 65535), default=9443, show_default=True,
              help="Broker port for MQTT over WebSocket with TLS.")
@click.option("--keys-port", type=click.IntRange(1, 65535), default=9080, show_default=True,
              help="Port of the keys endpoint (HTTP).")
@click.option("--mqtt-port", type=click.IntRange(1, 65535), default=9883, show_default=True,
              help="Plain MQTT port for other clients (mosquitto_pub/sub).")
@click.option("--lifetime", type=click.IntRange(60, 43200), default=3600, show_default=True, metavar="S",
              help="Lifetime of the keys the endpoint mints, in seconds.")
@click.option("--topics", default="/serverless/pubsub", show_default=True, metavar="T1,T2",
              help="Topics the keys name (the local broker does not enforce them).")
@click.option("--profile-name", default="local", show_default=True, metavar="NAME",
              help="Profile to write to the config file for this stack.")
def local(port: int, keys_port: int, mqtt_port: int, lifetime: int, topics: str, profile_name: str) -> None:
    """Run a local stack on loopback until Ctrl-C: Mosquitto with a TLS WebSocket listener and a keys endpoint."""
    from iotnotify.local.stack import LocalStack, StackConfig, default_state_dir, run_until_stopped
    from iotnotify.settings import save_profile

    topic_list = tuple(t.strip() for t in topics.split(",") if t.strip())
    stack = LocalStack(StackConfig(default_state_dir(), port, keys_port, mqtt_port, lifetime, topic_list))
    try:
        stack.start()
        config_file = save_profile(profile_name, stack.profile())
        _print_local_banner(stack, profile_name, str(config_file))
        run_until_stopped(stack)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM is how `local` is meant to stop
    finally:
        stack.stop()
    _note("iotnotify local: stopped")


def _print_local_banner(stack: Any, profile: str, config_file: str) -> None:
    """Tell a person what `local` started and how to use it."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    cfg = stack.config
    console.print(f"[bold green]iotnotify local[/] is running on loopback (Ctrl-C stops it)")
    console.print(f"  broker   wss://127.0.0.1:{cfg.wss_port}/mqtt  MQTT over WebSocket with TLS (CA {stack.tls.ca_file})")
    console.print(f"  broker   mqtt://127.0.0.1:{cfg.mqtt_port}  plain MQTT (Mosquitto) for other clients")
    console.print(f"  keys     {stack.endpoint_url}  keys last {cfg.lifetime} s")
    console.print(f"  profile  [bold]{profile}[/] written to {config_file}")
    console.print("Try, in another terminal:")
    console.print(f"  iotnotify --profile {profile} subscribe 'demo/#' -v")
    console.print(f"  iotnotify --profile {profile} send demo/hello 'hello'")


@cli.command("setup-role", context_settings=CONTEXT, epilog="""\b
Examples:
  iotnotify setup-role
  iotnotify setup-role --aws-profile admin --role-name my-notifications
  iotnotify setup-role --trust arn:aws:iam::123456789012:role/keys-function""")
@click.option("--role-name", default="serverless-notifications", show_default=True, metavar="NAME",
              help="Name of the role to create or update.")
@click.option("--trust", metavar="ARN", help="Who may assume the role (default: the account itself).")
@click.option("--aws-profile", metavar="NAME", help="AWS profile to use (default: boto3's credential chain).")
def setup_role(role_name: str, trust: str | None, aws_profile: str | None) -> None:
    """Create the notifications role the keys endpoint assumes (IoT only); update it if it exists."""
    from iotnotify.aws import aws_errors, session
    from iotnotify.server.policy import role_policy
    from iotnotify.server.role import ROLE_POLICY_NAME
    from iotnotify.server.role import setup_role as create_or_update

    aws = session(aws_profile)
    with aws_errors():
        result = create_or_update(aws.client("iam"), aws.client("sts"), role_name, trust)
    actions = ", ".join(role_policy()["Statement"][0]["Action"])  # type: ignore[index]
    click.echo(f"{'created' if result.created else 'updated'} role {role_name}: {result.arn}")
    click.echo(f"  trusted principal: {result.trusted}")
    click.echo(f"  inline policy {ROLE_POLICY_NAME}: allow {actions} (keys get less, by session policy)")


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM both stop a command cleanly (KeyboardInterrupt), even in a background job."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    """Entry point: run the command; turn every failure into one line on stderr and an exit code."""
    _interrupt_on_signals()
    try:
        code = cli.main(prog_name="iotnotify", standalone_mode=False)
    except errors.IotNotifyError as e:
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # always one line
        click.echo(f"iotnotify: {'' if isinstance(e, errors.Interrupted) else 'error: '}{message}", err=True)
        code = e.exit_code
    except click.exceptions.Abort:
        click.echo("iotnotify: interrupted", err=True)
        code = errors.EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        code = e.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        code = errors.EXIT_OK
    except Exception as e:  # noqa: BLE001 - a bug: one line unless asked for the traceback
        if os.environ.get("IOTNOTIFY_DEBUG"):
            raise
        click.echo(f"iotnotify: internal error: {type(e).__name__}: {e} (IOTNOTIFY_DEBUG=1 shows more)", err=True)
        code = errors.EXIT_INTERNAL
    sys.exit(code or 0)
