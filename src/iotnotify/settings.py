"""Settings: where keys come from and how to connect. Each comes from the command's flag, the same
flag before the command, its IOTNOTIFY_* environment variable (click reads them), the profile, or
its default (cli/options.py resolve_settings). One table says it all: Settings' fields, each with
its row (Setting), from which the options (cli/options.py), the keys a profile may hold, the
variables read without click and the settings an agent's identity depends on all come. This
module also reads and checks the profile."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from iotnotify.errors import ConfigError
from iotnotify.times import MAX_SECONDS

DEFAULT_PROFILE = "default"


class Protocol(enum.StrEnum):
    """The MQTT versions iotnotify speaks (AWS IoT Core's two)."""

    V5 = "5"
    V311 = "3.1.1"


PROTOCOLS = tuple(protocol.value for protocol in Protocol)
DEFAULT_PROTOCOL = Protocol.V5.value
DEFAULT_KEYS_TIMEOUT = 10.0  # s
DEFAULT_RECONNECT_DELAY = (1.0, 30.0)  # s: the first delay before reconnecting, and the longest
DEFAULT_SESSION_EXPIRY = 3600  # s the broker keeps a --session while its client is away
DEFAULT_KEEPALIVE = 60  # s between PINGREQs when nothing else is sent
MAX_KEEPALIVE = 65_535  # s: MQTT's two bytes

KEYS, CONNECT, GROUP, OWN = "keys", "connect", "group", "own"
"""Which commands take a setting's option: every command that uses keys, and the group before the
command (KEYS); the commands that connect (CONNECT); the group alone (GROUP); or the command that
declares it itself (OWN: `tail --topic`, `send --persist`)."""


@dataclass(frozen=True)
class Setting:
    """A row of the settings table (each of Settings' fields holds its own in its metadata): the
    type a value has in a profile and an IOTNOTIFY_* variable (tuple: texts, the option repeated,
    the variable split at white space), the option that gives it and its help, which commands take
    it, whether a profile or a variable may give it, whether an agent's connection depends on it
    (agent/__init__.py's identity), and the values it may take (`choices`; at most `most`, from
    0; seconds (float) above 0, at most a year; a duration)."""

    kind: type
    flag: str = ""
    metavar: str | None = None
    help: str = ""
    on: str = OWN
    short: str | None = None
    profile: bool = True
    env: bool = True
    identity: bool = False
    hidden: bool = False
    choices: tuple[str, ...] = ()
    most: int | None = None
    duration: bool = False  # text such as 10m (a profile's, a variable's), in seconds once resolved

    def problem(self, name: str, value: Any) -> str | None:
        """What is wrong with a value of the right type for setting `name` (a profile's, a
        variable's), as a clause; None if nothing."""
        if self.choices and value not in self.choices:
            return f"{name} {value!r} is not one of {', '.join(self.choices)}"
        if self.most is not None and not 0 <= value <= self.most:
            return f"{name} must be 0 to {self.most} seconds"
        if self.kind is float and not 0 < value <= MAX_SECONDS:  # TOML and float() have nan and inf
            return f"{name} must be a positive number of seconds, at most a year"
        return None


def _row(kind: type, flag: str = "", metavar: str | None = None, help: str = "", default: Any = None,  # noqa: A002
         **more: Any) -> Any:
    """A field of Settings with its row of the table."""
    return field(default=default, metadata={"setting": Setting(kind, flag, metavar, help, **more)})


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to find keys and connect, resolved once; the table of settings
    (`ROWS`): each field but the profile's name and the config file has its row."""

    profile: str | None
    config_path: Path
    keys_timeout: float = _row(float, "--keys-timeout", "S", on=GROUP, default=DEFAULT_KEYS_TIMEOUT,
                               help=f"Seconds to wait for the keys endpoint (default {DEFAULT_KEYS_TIMEOUT:g}).")
    endpoint: str | None = _row(str, "--endpoint", "URL", "Keys endpoint URL.", on=KEYS, identity=True)
    ca_file: str | None = _row(str, "--ca-file", "PATH", "CA bundle for a private broker.", on=KEYS, identity=True)
    no_cache: bool = _row(bool, "--no-cache", help="Fetch new keys; do not use or save the cache.", on=KEYS,
                          default=False)
    aws: bool = _row(bool, "--aws", help="No keys endpoint: use your AWS credentials (boto3's chain).", on=KEYS,
                     identity=True, default=False)
    aws_profile: str | None = _row(str, "--aws-profile", "NAME", "AWS profile for --aws (implies --aws).", on=KEYS,
                                   identity=True)
    aws_role: str | None = _row(str, "--aws-role", "ROLE", on=KEYS, identity=True,
                                help="With --aws: assume this notifications role with the endpoint's session policy.")
    cognito_pool: str | None = _row(str, "--cognito-pool", "REGION:ID", on=KEYS, identity=True,
                                    help="Keys from this Cognito identity pool instead of a keys endpoint.")
    logins: tuple[tuple[str, str], ...] = _row(
        tuple, "--login", "PROVIDER=TOKEN", on=KEYS, profile=False, identity=True, default=(),
        help="With --cognito-pool: a login (an OpenID Connect provider and its ID token, ...); any user sees it in "
             "`ps`: prefer --login-file or IOTNOTIFY_LOGIN.")  # (provider, token) pairs
    login_file: str | None = _row(str, "--login-file", "PATH", on=KEYS,
                                  help="With --cognito-pool: read the logins from PATH (- for stdin), PROVIDER=TOKEN "
                                       "a line.")
    iot_endpoint: str | None = _row(str, "--iot-endpoint", "HOST[:PORT]", on=KEYS, identity=True,
                                    help="AWS IoT data endpoint, for --cognito-pool keys (default: the keys endpoint's, "
                                         "if one is set).")
    cognito_endpoint: str | None = _row(str, "--cognito-endpoint", "URL", on=KEYS, identity=True, hidden=True,
                                        help="Cognito Identity's URL (default: the pool region's; iotnotify local "
                                             "writes its own).")
    proxy: str | None = _row(str, "--proxy", "URL", on=KEYS, identity=True,
                             help="HTTP proxy for the keys endpoint and the broker (default: HTTPS_PROXY, HTTP_PROXY; "
                                  "NO_PROXY lists hosts reached directly).")
    protocol: str = _row(str, "--protocol", on=CONNECT, identity=True, choices=PROTOCOLS, default=DEFAULT_PROTOCOL,
                         help=f"MQTT version (default {DEFAULT_PROTOCOL}).")
    client_id: str | None = _row(str, "--client-id", "ID", on=CONNECT, short="-i", identity=True,
                                 help="MQTT client id (default: the keys' clientId plus -RANDOM, else random "
                                      "iotnotify-...).")
    keepalive: int = _row(int, "--keepalive", "S", on=CONNECT, identity=True, most=MAX_KEEPALIVE,
                          default=DEFAULT_KEEPALIVE,
                          help=f"Seconds between pings when idle (default {DEFAULT_KEEPALIVE}; AWS IoT Core: 30 to "
                               "1200).")
    topic: str | None = _row(str, "--topic", "TOPIC", "The topic when no FILTER is given (the profile's `topic`).",
                             hidden=True)  # tail's
    persist: float | None = _row(str, "--persist", "DURATION", duration=True,
                                 help="Start an agent if none runs, kept for later sends until idle for DURATION "
                                      "(10m, 1h), as ssh's ControlPersist.")  # s, once resolved: send's

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (holds secrets: for a child process, never for output)."""
        from dataclasses import asdict

        return {**asdict(self), "config_path": str(self.config_path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        """`to_json`'s settings back."""
        return cls(**{**data, "config_path": Path(data["config_path"]),
                      "logins": tuple((provider, token) for provider, token in data.get("logins", ()))})


ROWS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in fields(Settings) if "setting" in f.metadata}
"""The table of settings, by name, in the order --help lists their options."""

PROFILE_KEYS = {name: (int, float) if row.kind is float else row.kind for name, row in ROWS.items() if row.profile}
"""The keys a profile may hold, each a setting of the same name."""

IDENTITY_FIELDS = tuple(name for name, row in ROWS.items() if row.identity)
"""The settings that decide which broker, as whom and how an agent's connection is made: a `send`
uses an agent whose settings agree on all of them."""


def variable(name: str) -> str:
    """The IOTNOTIFY_* variable that gives setting `name`."""
    return "IOTNOTIFY_LOGIN" if name == "logins" else f"IOTNOTIFY_{name.upper()}"


def resolve(profile_name: str | None, path: Path, given: Mapping[str, Any],
            defaults: Mapping[str, Any] | None = None, stdin: bool = True) -> Settings:
    """The Settings from `given` (a flag or an IOTNOTIFY_* variable, already picked by precedence),
    else the profile's value, else `defaults` (the command's own), else iotnotify's default.
    Without `stdin`, a --login-file - (which reads stdin) is a ValueError: stdin is not this
    caller's to read (the quick path, which leaves such a send to the CLI)."""
    profile = load_profile(profile_name, path)

    def pick(name: str) -> Any:
        value = given.get(name)
        return profile.get(name, (defaults or {}).get(name)) if value is None else value

    values: dict[str, Any] = {}
    for name, row in ROWS.items():
        value = pick(name)
        if value is None or (value == "" and not row.duration) or row.kind is tuple:
            continue  # the field's default (logins: below; a duration of "" is refused there)
        values[name] = row.kind(value) if row.kind in (bool, int, float) else value
    values["aws"] = bool(values.get("aws") or values.get("aws_profile") or values.get("aws_role"))
    if values.get("login_file") == "-" and not stdin and not given.get("logins"):
        raise ValueError("--login-file - reads stdin")
    values["logins"] = _logins(given.get("logins") or (), values.get("login_file"))
    values["persist"] = _duration(values.get("persist"), path)
    return Settings(profile=profile_name, config_path=path, **values)


def _logins(given: Sequence[str], login_file: str | None) -> tuple[tuple[str, str], ...]:
    """Cognito logins, PROVIDER=TOKEN each: those given (--login, or IOTNOTIFY_LOGIN split at white
    space), else the lines of `login_file` (- is stdin; blank lines and # comments skipped), which
    keeps the token out of `ps` and of the shell's history. The token is a secret: never echoed."""
    from iotnotify.errors import UsageError

    where = "--login"
    if not given and login_file:
        where = "--login-file"
        given = [line.strip() for line in _read_login_file(login_file).splitlines()]
        given = [line for line in given if line and not line.startswith("#")]
        if not given:  # (- read after a command that read stdin itself finds nothing)
            raise UsageError(f"--login-file {login_file}: no PROVIDER=TOKEN line in it")
    logins = []
    for text in given:
        provider, sep, token = str(text).partition("=")
        if not sep:  # the whole of it may be a token: not echoed
            raise UsageError(f"{where}: give PROVIDER=TOKEN (a login without '=')")
        if not provider.strip() or not token.strip():  # what is before '=' may be a token too (its padding)
            raise UsageError(f"{where}: give PROVIDER=TOKEN (a login with nothing before or after '=')")
        logins.append((provider.strip(), token.strip()))
    return tuple(logins)


def _read_login_file(path: str) -> str:
    import sys

    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read --login-file {path}: {getattr(e, 'strerror', None) or e}") from None


def _duration(value: Any, path: Path) -> float | None:
    """--persist's seconds (click parsed a flag's), or the profile's text ('10m') in seconds."""
    if value is None or isinstance(value, (int, float)):
        return value
    from iotnotify.times import parse_duration

    try:
        return parse_duration(str(value))
    except ValueError:
        raise ConfigError(f"{path}: persist = {value!r} is not a duration such as 90s, 10m, 1h") from None


def from_environment(profile_name: str | None, env: Mapping[str, str] = os.environ, stdin: bool = True) -> Settings:
    """The Settings a command given no setting flags resolves to: IOTNOTIFY_* variables, the profile,
    the defaults. ValueError for a variable click would refuse (the caller then lets click say it),
    and, without `stdin`, for a --login-file - (resolve)."""
    from iotnotify.booleans import parse_bool

    given: dict[str, Any] = {}
    for name, row in ROWS.items():
        text = env.get(variable(name)) if row.env else None
        if text is None or (text == "" and row.kind is not bool):
            continue
        if row.kind is tuple:
            given[name] = text.split()  # as click splits a variable for an option given more than once
            continue
        given[name] = parse_bool(text) if row.kind is bool else row.kind(text)
        if row.kind is not bool and (problem := row.problem(name, given[name])) is not None:  # click refuses it
            raise ValueError(problem)
        if row.duration:
            from iotnotify.times import parse_duration

            parse_duration(text)  # ValueError, as click's refusal
    return resolve(profile_name, config_path(env), given, stdin=stdin)


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The TOML config file: $IOTNOTIFY_CONFIG, else config.toml in the user's config folder."""
    if env.get("IOTNOTIFY_CONFIG"):
        return Path(env["IOTNOTIFY_CONFIG"])
    import platformdirs

    return Path(platformdirs.user_config_dir("iotnotify", appauthor=False)) / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """Parse the config file; a missing file is an empty config. A file another user owns or everyone
    may write is refused, as ssh refuses such a config: it could point the client at any broker."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    import tomllib  # its regular expressions are dear to compile: only when there is a file to parse

    try:
        with f:
            st = os.fstat(f.fileno())
            if st.st_uid not in (os.geteuid(), 0):
                raise ConfigError(f"config file {path} is owned by another user: not used (chown or remove it)")
            if st.st_mode & 0o002:
                raise ConfigError(f"config file {path} is writable by everyone: not used (chmod o-w {path})")
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None


def load_profile(name: str | None, path: Path) -> dict[str, Any]:
    """The named profile's values (the `default` profile's when none is named, if it exists),
    checked: ConfigError names the file and the key that is wrong."""
    profiles = read_config(path).get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    if name is None:
        values = profiles.get(DEFAULT_PROFILE, {})
    elif name in profiles:
        values = profiles[name]
    else:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"unknown profile {name!r} (profiles in {path}: {known})")
    shown = name or DEFAULT_PROFILE
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: profile {shown!r} must be a table")
    for key, value in values.items():
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{path}: profile {shown!r} has unknown key {key!r}")
        kind = PROFILE_KEYS[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ConfigError(f"{path}: profile {shown!r}: {key} = {value!r} is not a {_kind(kind)}")
        if (problem := ROWS[key].problem(key, value)) is not None:
            raise ConfigError(f"{path}: profile {shown!r}: {problem}")
    return values


def _kind(kind: type | tuple[type, ...]) -> str:
    return {str: "string", bool: "boolean (true or false)"}.get(kind, "number") if isinstance(kind, type) else "number"


def save_profile(name: str, values: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write (or replace) profile `name` in the config file, keeping the rest and its comments
    (atomically; mode 0600)."""
    import tomlkit

    from iotnotify.files import write_private

    path = path or config_path()
    try:
        document = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    except (OSError, tomlkit.exceptions.ParseError) as e:
        raise ConfigError(f"cannot update config file {path}: {e}") from None
    profiles = document.setdefault("profiles", tomlkit.table(is_super_table=True))
    table = tomlkit.table()
    for key, value in values.items():
        table[key] = value
    profiles[name] = table
    # written whole: a command reading it meanwhile (a script that started `iotnotify local &`) sees the old
    # file or the new one, never half of it; through a link (a dotfiles manager's), which stays one
    write_private(path.resolve(), tomlkit.dumps(document).encode())
    return path
