"""Settings: where keys come from and how to connect. Each comes from the command's flag, the same
flag before the command, its IOTNOTIFY_* environment variable (click reads them), the profile, or
its default (cli/options.py resolve_settings); this module reads and checks the profile and holds
the defaults and the typed Settings."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

# the keys a profile may hold, each an option of the same name (`topic`: tail's, when none is given),
# and the type its value must have
PROFILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "endpoint": str, "ca_file": str, "protocol": str, "client_id": str, "keys_timeout": (int, float),
    "no_cache": bool, "aws": bool, "aws_profile": str, "aws_role": str, "topic": str,
    "keepalive": int, "proxy": str, "cognito_pool": str, "cognito_endpoint": str, "iot_endpoint": str,
    "persist": str, "login_file": str,
}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to find keys and connect, resolved once."""

    profile: str | None
    endpoint: str | None
    ca_file: str | None
    protocol: str
    client_id: str | None
    keys_timeout: float
    no_cache: bool
    config_path: Path
    aws: bool = False
    aws_profile: str | None = None
    aws_role: str | None = None
    topic: str | None = None
    keepalive: int = DEFAULT_KEEPALIVE
    proxy: str | None = None  # an http:// proxy URL (else HTTPS_PROXY and friends)
    cognito_pool: str | None = None  # keys from this Cognito identity pool (REGION:UUID), not the endpoint
    cognito_endpoint: str | None = None  # Cognito Identity's URL (default: the pool region's; local's own)
    iot_endpoint: str | None = None  # HOST[:PORT] of AWS IoT, for Cognito keys (which do not say it)
    logins: tuple[tuple[str, str], ...] = ()  # Cognito logins: (provider, token)
    persist: float | None = None  # s: `send` starts an agent that exits after this long idle

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (holds secrets: for a child process, never for output)."""
        from dataclasses import asdict

        return {**asdict(self), "config_path": str(self.config_path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        """`to_json`'s settings back."""
        return cls(**{**data, "config_path": Path(data["config_path"]),
                      "logins": tuple((provider, token) for provider, token in data.get("logins", ()))})


ENV_FIELDS: dict[str, type] = {
    "endpoint": str, "ca_file": str, "no_cache": bool, "aws": bool, "aws_profile": str, "aws_role": str,
    "cognito_pool": str, "iot_endpoint": str, "cognito_endpoint": str, "proxy": str, "protocol": str,
    "client_id": str, "keepalive": int, "keys_timeout": float, "topic": str, "login_file": str,
}
"""The settings an IOTNOTIFY_<NAME> variable may give, and their types (click reads the same
variables for the commands' options; `from_environment` reads them where click is not loaded)."""


def resolve(profile_name: str | None, path: Path, given: Mapping[str, Any],
            defaults: Mapping[str, Any] | None = None) -> Settings:
    """The Settings from `given` (a flag or an IOTNOTIFY_* variable, already picked by precedence),
    else the profile's value, else `defaults` (the command's own), else iotnotify's default."""
    profile = load_profile(profile_name, path)

    def pick(name: str) -> Any:
        value = given.get(name)
        return profile.get(name, (defaults or {}).get(name)) if value is None else value

    aws_profile, aws_role = pick("aws_profile") or None, pick("aws_role") or None
    logins = _logins(given.get("logins") or (), pick("login_file"))
    keepalive = pick("keepalive")
    return Settings(
        profile=profile_name, config_path=path,
        endpoint=pick("endpoint") or None, ca_file=pick("ca_file") or None,
        protocol=pick("protocol") or DEFAULT_PROTOCOL, client_id=pick("client_id") or None,
        keys_timeout=float(pick("keys_timeout") or DEFAULT_KEYS_TIMEOUT), no_cache=bool(pick("no_cache")),
        aws=bool(pick("aws") or aws_profile or aws_role), aws_profile=aws_profile, aws_role=aws_role,
        topic=pick("topic") or None,
        keepalive=DEFAULT_KEEPALIVE if keepalive is None else int(keepalive), proxy=pick("proxy") or None,
        cognito_pool=pick("cognito_pool") or None, cognito_endpoint=pick("cognito_endpoint") or None,
        iot_endpoint=pick("iot_endpoint") or None, logins=tuple(logins), persist=_duration(pick("persist"), path),
    )


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


def from_environment(profile_name: str | None, env: Mapping[str, str] = os.environ) -> Settings:
    """The Settings a command given no setting flags resolves to: IOTNOTIFY_* variables, the profile,
    the defaults. ValueError for a variable click would refuse (the caller then lets click say it)."""
    from iotnotify.booleans import parse_bool

    given: dict[str, Any] = {"logins": env.get("IOTNOTIFY_LOGIN", "").split()}  # as click splits a variable
    for name, kind in ENV_FIELDS.items():
        text = env.get(f"IOTNOTIFY_{name.upper()}")
        if text is None or (text == "" and kind is not bool):
            continue
        given[name] = parse_bool(text) if kind is bool else kind(text)
        if (kind is float and not 0 < given[name] <= MAX_SECONDS) or (  # nan, inf: click refuses them
                name == "keepalive" and not 0 <= given[name] <= MAX_KEEPALIVE):
            raise ValueError(f"{name} {text!r}")
    if given.get("protocol", DEFAULT_PROTOCOL) not in PROTOCOLS:
        raise ValueError(f"protocol {given['protocol']!r}")
    return resolve(profile_name, config_path(env), given)


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
        if not isinstance(value, PROFILE_KEYS[key]) or (isinstance(value, bool) and PROFILE_KEYS[key] is not bool):
            raise ConfigError(f"{path}: profile {shown!r}: {key} = {value!r} is not a {_kind(PROFILE_KEYS[key])}")
    if "protocol" in values and values["protocol"] not in PROTOCOLS:
        raise ConfigError(f"{path}: profile {shown!r}: protocol {values['protocol']!r} is not one of "
                          f"{', '.join(PROTOCOLS)}")
    if "keepalive" in values and not 0 <= values["keepalive"] <= MAX_KEEPALIVE:
        raise ConfigError(f"{path}: profile {shown!r}: keepalive must be 0 to {MAX_KEEPALIVE} seconds")
    if "keys_timeout" in values and not 0 < values["keys_timeout"] <= MAX_SECONDS:  # TOML has nan and inf
        raise ConfigError(f"{path}: profile {shown!r}: keys_timeout must be a positive number of seconds, "
                          "at most a year")
    return values


def _kind(kind: type | tuple[type, ...]) -> str:
    return {str: "string", bool: "boolean (true or false)"}.get(kind, "number") if isinstance(kind, type) else "number"


def save_profile(name: str, values: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write (or replace) profile `name` in the config file, keeping the rest and its comments."""
    import tomlkit

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
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomlkit.dumps(document))
    return path
