"""Settings: command-line flags, then IOTNOTIFY_* environment variables, then the profile's values."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotnotify.errors import ConfigError

DEFAULT_PROFILE = "default"
PROTOCOLS = ("5", "3.1.1")
DEFAULT_KEYS_TIMEOUT = 10.0
DEFAULT_RECONNECT_DELAY = (1.0, 30.0)  # s: the first delay before reconnecting, and the longest
DEFAULT_SESSION_EXPIRY = 3600  # s the broker keeps a --session while its client is away

# setting name -> (environment variable, type); the same names are the profile's keys.
FIELDS: dict[str, tuple[str, type]] = {
    "endpoint": ("IOTNOTIFY_ENDPOINT", str),
    "ca_file": ("IOTNOTIFY_CA_FILE", str),
    "protocol": ("IOTNOTIFY_PROTOCOL", str),
    "client_id": ("IOTNOTIFY_CLIENT_ID", str),
    "keys_timeout": ("IOTNOTIFY_KEYS_TIMEOUT", float),
    "no_cache": ("IOTNOTIFY_NO_CACHE", bool),
    "aws": ("IOTNOTIFY_AWS", bool),
    "aws_profile": ("IOTNOTIFY_AWS_PROFILE", str),
    "aws_role": ("IOTNOTIFY_AWS_ROLE", str),
    "topic": ("IOTNOTIFY_TOPIC", str),
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


def config_path(env: Mapping[str, str] = os.environ) -> Path:
    """The TOML config file: $IOTNOTIFY_CONFIG, else config.toml in click's app dir for iotnotify."""
    if env.get("IOTNOTIFY_CONFIG"):
        return Path(env["IOTNOTIFY_CONFIG"])
    import click

    return Path(click.get_app_dir("iotnotify")) / "config.toml"


def read_config(path: Path) -> dict[str, Any]:
    """Parse the config file; a missing file is an empty config. A file another user owns or everyone
    may write is refused, as ssh refuses such a config: it could point the client at any broker."""
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid not in (os.geteuid(), 0):
                raise ConfigError(f"config file {path} is owned by another user: not used (chown or remove it)")
            if st.st_mode & 0o002:
                raise ConfigError(f"config file {path} is writable by everyone: not used (chmod o-w {path})")
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None


def _profile_values(config: dict[str, Any], name: str | None, path: Path) -> dict[str, Any]:
    """The named profile's table; the `default` profile when none is named (and it exists)."""
    profiles = config.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    if name is None:
        values = profiles.get(DEFAULT_PROFILE, {})
    elif name in profiles:
        values = profiles[name]
    else:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"unknown profile {name!r} (profiles in {path}: {known})")
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: profile {name!r} must be a table")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path}: profile {name or DEFAULT_PROFILE!r} has unknown key {unknown[0]!r}")
    return values


def _from_env(name: str, env: Mapping[str, str]) -> Any:
    """The value of setting `name` from its environment variable, converted, or None if unset."""
    var, kind = FIELDS[name]
    raw = env.get(var)
    if raw is None or raw == "":
        return None
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{var}={raw!r} is not a number") from None
    return raw


def resolve(
    flags: Mapping[str, Any], profile: str | None = None, env: Mapping[str, str] = os.environ
) -> Settings:
    """Merge flags (None = not given), the environment and the profile into Settings."""
    profile = profile or env.get("IOTNOTIFY_PROFILE") or None
    path = config_path(env)
    values = _profile_values(read_config(path), profile, path)
    merged: dict[str, Any] = {}
    for name in FIELDS:
        value = flags.get(name)
        if value is None or value is False:
            env_value = _from_env(name, env)
            value = env_value if env_value is not None else values.get(name, value)
        merged[name] = value
    protocol = str(merged["protocol"] or "5")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    try:
        keys_timeout = float(merged["keys_timeout"] or DEFAULT_KEYS_TIMEOUT)
    except (TypeError, ValueError):
        raise ConfigError(f"keys_timeout {merged['keys_timeout']!r} is not a number") from None
    if keys_timeout <= 0:
        raise ConfigError("keys_timeout must be positive")
    return Settings(
        profile=profile,
        endpoint=merged["endpoint"] or None,
        ca_file=merged["ca_file"] or None,
        protocol=protocol,
        client_id=merged["client_id"] or None,
        keys_timeout=keys_timeout,
        no_cache=bool(merged["no_cache"]),
        config_path=path,
        aws=bool(merged["aws"] or merged["aws_profile"] or merged["aws_role"]),
        aws_profile=merged["aws_profile"] or None,
        aws_role=merged["aws_role"] or None,
        topic=merged["topic"] or None,
    )


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
