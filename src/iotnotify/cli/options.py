"""The options commands share, as decorators with public names (as sqlite-utils' `output_options`
and httpie's `cli/options.py`), and resolving them, with the group's, into Settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from iotnotify import limits
from iotnotify.cli.completers import key_names, profile_names, topic_names
from iotnotify.cli.terminal import duplicate_note, note, refusal_notes
from iotnotify.quick.argv import NAMES as SEND  # the quick path reads these options of send's too
from iotnotify.settings import (
    CONNECT,
    DEFAULT_RECONNECT_DELAY,
    DEFAULT_SESSION_EXPIRY,
    GROUP,
    KEYS,
    ROWS,
    Settings,
    variable,
)

if TYPE_CHECKING:
    from iotnotify.dedupe import Dedupe
    from iotnotify.keys import KeySource
    from iotnotify.mqtt import Will
    from iotnotify.output import OutputStyle
    from iotnotify.properties import Properties
    from iotnotify.signing import Signer, Verifier

F = TypeVar("F", bound=Callable[..., Any])

MAX_COUNT = 10**9  # messages or requests a -C may wait for (more would overflow what counts them)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""The context settings of the group and of every command."""

Decorator = Callable[[Any], Any]


def _options(on: str, env: bool = True) -> list[Decorator]:
    """The options of the settings table's rows `on` (settings.ROWS), with their IOTNOTIFY_*
    variables if `env`."""
    return [setting_option(name, env) for name, row in ROWS.items() if row.on == on]


def setting_option(name: str, env: bool = True) -> Decorator:
    """The click option of setting `name` (its row of the table): a flag (None when not given, so
    that the profile's value shows through), a repeated option, a choice, seconds, a bounded count,
    a duration, or text."""
    row = ROWS[name]
    kind: dict[str, Any] = {}
    if row.kind is bool:
        kind = {"is_flag": True, "default": None}
    elif row.kind is tuple:
        kind = {"multiple": True}
    elif row.choices:
        kind = {"type": click.Choice(row.choices)}
    elif row.kind is float:
        kind = {"type": Seconds()}
    elif row.most is not None:
        kind = {"type": click.IntRange(0, row.most)}
    elif row.duration:
        kind = {"type": Duration()}
    names = [row.flag, *([row.short] if row.short else []), name]
    return click.option(*names, metavar=row.metavar, help=row.help, hidden=row.hidden, **kind, **_variable(name, env))


def _variable(name: str, env: bool) -> dict[str, Any]:
    return {"envvar": variable(name), "show_envvar": True} if env else {}


def _key_options(env: bool) -> list[Decorator]:
    """The options that say where keys come from: on each command (with their IOTNOTIFY_* variables)
    and, without them, before the command; and --debug."""
    return [
        *_options(KEYS, env),
        click.option("--debug", is_flag=True, expose_value=False, callback=_debug,
                     help="Trace on stderr what happens on the wire: keys, connection, CONNACK, SUBACK, PUBACK, "
                          "DISCONNECT (never a secret).", **_variable("debug", env)),
    ]


def _debug(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from iotnotify import trace

        trace.enable()


def _apply(command: F, decorators: list[Decorator]) -> F:
    """`command` with `decorators` applied, the first outermost (so --help lists them in order)."""
    decorated: Any = command
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return cast("F", decorated)


def group_options(command: F) -> F:
    """The options before the command: the profile, the keys endpoint's timeout, and where keys
    come from (which the same options after the command override)."""
    return _apply(command, [
        click.option(*SEND["profile"], metavar="NAME", envvar="IOTNOTIFY_PROFILE", show_envvar=True,
                     shell_complete=profile_names,
                     help="Profile in the config file (default: the profile `default`, if any)."),
        *_options(GROUP),
        *_key_options(env=False),
    ])


def connection_options(command: F) -> F:
    """Options every command that needs keys takes (they override the same options before the command)."""
    return _apply(command, _key_options(env=True))


def connect_options(command: F) -> F:
    """Options that say how to connect to the broker (the agent takes them too)."""
    return _apply(command, _options(CONNECT))


def mqtt_options(command: F) -> F:
    """Options of the commands that connect to the broker and send or receive messages."""
    return connect_options(_apply(command, [
        click.option(*SEND["qos"], type=click.IntRange(0, 1), default=1, show_default=True,
                     help="Quality of service: 0 at most once, 1 at least once."),
    ]))


class Seconds(click.ParamType[float, Any]):
    """A number of seconds: finite (NaN and infinity are refused, as they break every wait), above
    `low` (or at least, unless `open_low`), at most a year (times.MAX_SECONDS)."""

    name = "SECONDS"

    def __init__(self, low: float = 0.0, open_low: bool = True) -> None:
        self.low, self.open_low = low, open_low

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        import math

        from iotnotify.times import MAX_SECONDS

        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        if seconds < self.low or (self.open_low and seconds == self.low):
            self.fail(f"{value!r}: needs {'more than' if self.open_low else 'at least'} {self.low:g} seconds",
                      param, ctx)
        if seconds > MAX_SECONDS:
            self.fail(f"{value!r}: at most {MAX_SECONDS:g} seconds (a year)", param, ctx)
        return seconds


class Duration(click.ParamType[float, Any]):
    """A duration: 90, 90s, 10m, 1h, 1d."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        from iotnotify.times import parse_duration

        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 90s, 10m, 1h (at most a year)", param, ctx)


def will_options(command: F) -> F:
    """The will: what the broker publishes if the connection ends without a DISCONNECT (a crash,
    a lost network), for the commands that stay connected."""
    return _apply(command, [
        click.option("--will-topic", metavar="TOPIC", help="Publish a will to TOPIC if the connection ends abruptly."),
        click.option("--will-message", metavar="TEXT", help="The will's payload (default empty)."),
        click.option("--will-qos", type=click.IntRange(0, 1), default=0, show_default=True, help="The will's QoS."),
        click.option("--will-retain", is_flag=True, help="The broker retains the will."),
        click.option("--will-delay", type=click.IntRange(0, 2**32 - 1), metavar="S",
                     help="MQTT 5: publish the will only if not reconnected within S seconds."),
    ])


def will_of(flags: dict[str, Any], protocol: str) -> Will | None:
    """The will the --will-* flags ask for; UsageError for a will without a topic, or a delay with MQTT 3.1.1."""
    import os

    from iotnotify.errors import UsageError
    from iotnotify.mqtt import Will
    from iotnotify.settings import Protocol

    topic, message, delay = flags.get("will_topic"), flags.get("will_message"), flags.get("will_delay")
    if topic is None:
        if message is not None or flags.get("will_retain") or delay is not None:
            raise UsageError("--will-message, --will-retain and --will-delay need --will-topic")
        return None
    if delay is not None and protocol == Protocol.V311:
        raise UsageError("--will-delay needs MQTT 5: --protocol 3.1.1 has no will delay")
    return Will(topic, os.fsencode(message or ""), int(flags.get("will_qos") or 0), bool(flags.get("will_retain")),
                delay)


class DelayRange(click.ParamType[tuple[float, float], Any]):
    """MIN,MAX seconds, 0 < MIN <= MAX."""

    name = "MIN,MAX"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[float, float]:
        if isinstance(value, tuple):
            return value
        from iotnotify.times import MAX_SECONDS

        try:
            low, high = (float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not MIN,MAX in seconds", param, ctx)
        if not 0 < low <= high <= MAX_SECONDS:  # NaN fails this too
            self.fail(f"{value!r}: need 0 < MIN <= MAX <= {MAX_SECONDS:g}", param, ctx)
        return low, high


class SplitCommand(click.Command):
    """`respond`/`on FILTER... -- CMD [ARGS...]`: what follows the first `--` is the command (in
    ctx.meta["iotnotify.command"]), untouched by click."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            args, ctx.meta["iotnotify.command"] = args[:at], args[at + 1 :]
        return super().parse_args(ctx, args)


def long_running_options(command: F) -> F:
    """Options of the commands that stay connected: persistent sessions and reconnection delays."""
    return _apply(command, [
        click.option("--session", metavar="NAME",
                     help="Persistent session NAME (also the client id): QoS 1 messages sent while you "
                          "were away are delivered when you come back."),
        click.option("--session-expiry", type=click.IntRange(60, 7 * 24 * 3600), default=DEFAULT_SESSION_EXPIRY,
                     show_default=True, metavar="S", help="Seconds the broker keeps the --session while you are away."),
        click.option("--reconnect-delay", type=DelayRange(), show_default=True,
                     default=",".join(f"{seconds:g}" for seconds in DEFAULT_RECONNECT_DELAY),
                     help="Seconds to wait before reconnecting: MIN, doubled with jitter per failed attempt, "
                          "up to MAX. Under AWS IoT Core's rules (one CONNECT a second per client id) MIN is 1 s "
                          "at least: a lost connection is made again at once, then each MIN for 20 s, then "
                          "backing off from 2 x MIN to MAX, without jitter."),
        click.option("--partial", is_flag=True,
                     help="Go on with the filters the broker granted when it refuses some (each refusal on stderr)."),
    ])


def resolve_settings(ctx: click.Context) -> Settings:
    """The Settings for a command, each from: the command's flag, else the same flag before the
    command, else its IOTNOTIFY_* variable (as click read it), else the profile, else its default.
    The profile is read here, not handed to click as a default_map: click 8.5 looks up every
    option's default to draw --help, which would then read the config file for every --help."""
    from iotnotify.settings import config_path, resolve

    root = ctx.find_root()
    Source = click.core.ParameterSource  # noqa: N806 - click's enum, named as click names it
    given: dict[str, Any] = {}
    for name in {*ctx.params, *root.params} - {"profile"}:
        for source in (Source.COMMANDLINE, Source.ENVIRONMENT):  # a flag after the command, then before it
            where = next((c for c in (ctx, root) if c.params.get(name) is not None
                          and c.get_parameter_source(name) == source), None)
            if where is not None:
                given[name] = where.params[name]
                break
    defaults = {name: value for name, value in ctx.params.items() if value is not None and name not in given}
    return resolve(root.params.get("profile"), config_path(), given, defaults)


def source_of(settings: Settings) -> KeySource:
    """The key source the settings ask for; a key cache it cannot trust is said on stderr."""
    from iotnotify.keys import source_for

    return source_for(settings, warn=lambda message: note(f"iotnotify: warning: {message}"))


PROPERTY_FLAGS = {"user_property": "--user-property", "content_type": "--content-type",
                  "response_topic": "--response-topic", "correlation_data": "--correlation-data",
                  "message_expiry": "--message-expiry", "payload_format": "--payload-format"}


def property_options(command: F) -> F:
    """MQTT 5 message properties for the commands that publish (send, request, respond); their
    checks (properties.py) are imported only when a command builds them, not for --help."""
    return _apply(command, [
        click.option("--user-property", multiple=True, metavar="KEY=VALUE",
                     help="MQTT 5 user property (repeatable; order kept)."),
        click.option("--content-type", metavar="TYPE", help="MQTT 5 content type, e.g. application/json."),
        click.option("--response-topic", metavar="TOPIC", help="MQTT 5 response topic, for a reply."),
        click.option("--correlation-data", metavar="DATA",
                     help="MQTT 5 correlation data: text, or hex:... or base64:... bytes."),
        click.option("--message-expiry", type=click.IntRange(0, 2**32 - 1), metavar="S",
                     help="MQTT 5 message expiry: the broker drops the message if not delivered within S seconds "
                          "(AWS IoT Core: at most 604800)."),
        click.option("--payload-format", type=click.Choice(("utf8", "bytes")),
                     help="MQTT 5 payload format indicator (utf8: the payload must be UTF-8)."),
    ])


def properties_of(flags: dict[str, Any], protocol: str, sender: str | None = None) -> Properties | None:
    """The MQTT 5 properties the flags ask for (None if none), with `sender`'s `iotnotify-sender`
    property (send --sender) after the user's; with MQTT 3.1.1 a UsageError naming the first flag
    given, since that protocol cannot carry them."""
    from iotnotify.errors import UsageError
    from iotnotify.properties import Properties, parse_correlation, parse_user_property
    from iotnotify.settings import Protocol

    given = [flag for name, flag in PROPERTY_FLAGS.items() if flags.get(name) not in (None, ())]
    if sender is not None and not sender:
        raise UsageError("--sender needs a name")
    given += ["--sender"] if sender is not None else []
    if not given:
        return None
    if protocol == Protocol.V311:
        raise UsageError(f"{given[0]} needs MQTT 5: --protocol 3.1.1 has no message properties")
    correlation = flags.get("correlation_data")
    expiry = flags.get("message_expiry")
    if expiry is not None and expiry > limits.MAX_MESSAGE_EXPIRY:
        note(f"iotnotify: warning: --message-expiry {expiry}: AWS IoT Core keeps a message at most "
             f"{limits.MAX_MESSAGE_EXPIRY} seconds (7 days) and shortens a longer expiry to that")
    from iotnotify.quorum import SENDER

    return Properties(
        user_properties=tuple(parse_user_property(text) for text in flags.get("user_property") or ()) +
        (((SENDER, sender),) if sender is not None else ()),
        content_type=flags.get("content_type"), response_topic=flags.get("response_topic"),
        correlation_data=None if correlation is None else parse_correlation(correlation),
        message_expiry=flags.get("message_expiry"), payload_format=flags.get("payload_format"))


def output_options(command: F) -> F:
    """How commands that print messages (subscribe, request) print them."""
    return _apply(command, [
        click.option("--verbose", "-v", is_flag=True, help="Print the topic before each payload."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print JSON lines: topic, payload, qos, retain, time, and the MQTT 5 properties set."),
        click.option("--format", "-F", "template", metavar="TEMPLATE",
                     help="Print each message with a template: {topic} {payload} {qos} {retain} {time} {json} "
                          "{base64} {hex}, and the MQTT 5 properties {user_properties} {content_type} "
                          "{response_topic} {correlation_data} {message_expiry} {payload_format}; with --verify, "
                          "{signed_by}."),
        click.option("--pretty", is_flag=True, help="Indent JSON payloads."),
        click.option("-N", "no_newline", is_flag=True, help="Do not print a newline after each message."),
        click.option("--null", "-0", "null", is_flag=True,
                     help="End each message with a NUL byte instead of a newline (for xargs -0, read -d '', "
                          "payloads of several lines)."),
    ])


def selection_options(command: F) -> F:
    """Which received messages a command takes (selection.py)."""
    return _apply(command, [
        click.option("--exclude", "-T", multiple=True, metavar="FILTER", shell_complete=topic_names,
                     help="Skip messages on topics FILTER matches (MQTT filter syntax; repeatable), as "
                          "mosquitto_sub -T."),
        click.option("--grep", metavar="REGEX",
                     help="Take only messages whose payload REGEX finds a match in (Python syntax)."),
    ])


def dedupe_option(command: F) -> F:
    """--dedupe WINDOW, of the commands that take messages (dedupe.py)."""
    return click.option("--dedupe", type=Duration(), metavar="WINDOW",
                        help="Drop a message whose iotnotify-id (send gives each message one) came in the last "
                             "WINDOW (90s, 10m, 1h): QoS 1 may deliver a message twice.")(command)


def dedupe_of(window: float | None, say: bool) -> Dedupe | None:
    """--dedupe WINDOW's Dedupe (None without it), each duplicate said on stderr if `say`."""
    from iotnotify.dedupe import Dedupe

    return None if window is None else Dedupe(window, duplicate_note if say else None)


def sign_option(command: F) -> F:
    """--sign NAME, of the commands that publish (signing.py)."""
    return click.option("--sign", metavar="NAME", shell_complete=key_names,
                        help="Sign each message with key NAME (iotnotify keygen NAME), or an OpenSSH Ed25519 "
                             "private key at a PATH with a /: subscribers with --verify take only signed ones "
                             "(MQTT 5).")(command)


def signer_of(name: str | None, protocol: str, no_id: bool = False,
              properties: Properties | None = None) -> Signer | None:
    """--sign NAME's Signer (None without it); UsageError for a key that cannot sign, MQTT 3.1.1
    (no user properties to carry a signature), or --no-id or an `iotnotify-id` of the user's (each
    signed message has its own id: one given for all would make the second a replay)."""
    if name is None:
        return None
    from iotnotify.errors import UsageError
    from iotnotify.settings import Protocol
    from iotnotify.signing import load_signer

    if protocol == Protocol.V311:
        raise UsageError("--sign needs MQTT 5: --protocol 3.1.1 has no user properties to carry a signature")
    if no_id:
        raise UsageError("--sign signs each message's iotnotify-id: not with --no-id")
    if properties is not None and any(key == "iotnotify-id" for key, _ in properties.user_properties):
        raise UsageError("--sign gives each message an iotnotify-id of its own: not with --user-property iotnotify-id=")
    return load_signer(name)


def verify_options(command: F) -> F:
    """--verify FILE and --verify-window, of the commands that take messages (signing.py)."""
    from iotnotify.signing import WINDOW

    return _apply(command, [
        click.option("--verify", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Take only messages signed (send --sign) by a key in FILE (`ssh-ed25519 KEY NAME` lines, "
                          "as keygen prints), for their topic, within the window, once; count the others on "
                          "stderr (MQTT 5)."),
        click.option("--verify-window", type=Duration(), metavar="DURATION",
                     help=f"With --verify: refuse messages signed longer ago (or later) than DURATION by this "
                          f"machine's clock (default {WINDOW:g}s)."),
    ])


def verifier_of(path: str | None, window: float | None, protocol: str, say: bool = True) -> Verifier | None:
    """--verify FILE's Verifier (None without it), each message it refuses said on stderr if `say`
    (at most one line a second: refusal_notes; tail's live view counts them in its footer instead);
    UsageError for a bad FILE, a window without it, or MQTT 3.1.1."""
    from iotnotify.errors import UsageError

    if path is None:
        if window is not None:
            raise UsageError("--verify-window goes with --verify FILE")
        return None
    from iotnotify.settings import Protocol
    from iotnotify.signing import WINDOW, Verifier, read_trusted

    if protocol == Protocol.V311:
        raise UsageError("--verify needs MQTT 5: --protocol 3.1.1 has no user properties to carry a signature")
    return Verifier(read_trusted(path), WINDOW if window is None else window, refusal_notes() if say else None)


def style_of(flags: dict[str, Any]) -> OutputStyle:
    """The output style the output_options ask for; UsageError for flags that do not go together."""
    from iotnotify.errors import UsageError
    from iotnotify.output import OutputStyle

    as_json, verbose, template, pretty = flags["as_json"], flags["verbose"], flags["template"], flags["pretty"]
    styles = [name for name, given in (("--json", as_json), ("--format", template is not None),
                                       ("-v", verbose and template is not None)) if given]
    if len(styles) > 1 or (pretty and (as_json or template is not None)):
        raise UsageError("--json, --format and -v/--pretty cannot be combined")
    if flags["no_newline"] and flags["null"]:
        raise UsageError("-N and -0 cannot be combined")
    return OutputStyle(as_json, verbose, template, pretty, b"" if flags["no_newline"] else b"\0" if flags["null"] else b"\n")
