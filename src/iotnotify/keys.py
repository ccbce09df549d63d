"""Temporary keys: parsing the endpoint's answer, fetching it, and the per-endpoint 0600 cache."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iotnotify.errors import KeysError
from iotnotify.topics import is_aws_host

DEFAULT_LIFETIME = 3600.0  # the tutorial's endpoint does not say; its keys last one hour
DEFAULT_PORT = 443
REQUIRED = ("iotEndpoint", "region", "accessKey", "secretKey", "sessionToken")
SECRET_FIELDS = ("secretKey", "sessionToken")
MAX_REFRESH_MARGIN = 300.0


@dataclass(frozen=True)
class TemporaryKeys:
    """Short-lived AWS keys and where to use them, as the keys endpoint returned them."""

    host: str
    port: int
    region: str
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: dt.datetime
    fetched_at: dt.datetime
    raw: dict[str, Any] = field(repr=False, compare=False)

    def expires_in(self, now: dt.datetime | None = None) -> float:
        """Seconds until the keys expire (negative once expired)."""
        now = now or dt.datetime.now(dt.timezone.utc)
        return (self.expiration - now).total_seconds()

    @property
    def aws_rules(self) -> bool:
        """Whether the broker plays by AWS IoT Core's rules (limits, throttle): an AWS endpoint, or
        keys that say so (`"awsRules": true`, from `iotnotify local`)."""
        return is_aws_host(self.host) or self.raw.get("awsRules") is True

    def fresh(self, now: dt.datetime | None = None) -> bool:
        """Whether the keys are still good for a new connection (not within the refresh margin)."""
        lifetime = (self.expiration - self.fetched_at).total_seconds()
        margin = min(MAX_REFRESH_MARGIN, max(lifetime, 0) / 4)
        return self.expires_in(now) > margin


def _parse_time(value: str) -> dt.datetime:
    """Parse an ISO 8601 time (a trailing Z allowed); naive times are UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")  # a DNS name or an IPv4 address
REGION = re.compile(r"[A-Za-z0-9-]{1,64}")  # it goes into the signature's credential scope


def _split_endpoint(value: str, port: int) -> tuple[str, int]:
    """Accept a bare host name (the tutorial) or a URL such as wss://host:port/mqtt; KeysError for
    anything that is not a host (and port) a connection could be made to."""
    if "://" in value:
        try:
            parts = urlsplit(value)
            host, port = parts.hostname, parts.port or port
        except ValueError as e:  # an out-of-range port, a broken [IPv6] literal
            raise KeysError(f"keys endpoint answered with an unusable iotEndpoint {value!r}: {e}") from None
        if not host:
            raise KeysError(f"keys endpoint answered with an iotEndpoint that has no host: {value!r}")
    else:
        host = value
    if not HOST.fullmatch(host):
        import ipaddress  # only for IPv6 literals

        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise KeysError(f"keys endpoint answered with an iotEndpoint that is not a host name: {value!r}") from None
    return host, port


def parse_keys(data: Any, fetched_at: dt.datetime | None = None) -> TemporaryKeys:
    """Turn the endpoint's JSON into TemporaryKeys, naming any missing or mistyped field."""
    if not isinstance(data, dict):
        raise KeysError(f"keys endpoint answered with JSON {type(data).__name__}, not an object")
    for name in REQUIRED:
        if name not in data:
            raise KeysError(f"keys endpoint answer is missing field {name!r}")
        if not isinstance(data[name], str) or not data[name].strip():
            raise KeysError(f"keys endpoint field {name!r} must be a non-empty string")
    if not REGION.fullmatch(data["region"]):
        raise KeysError(f"keys endpoint field 'region' is not a region name: {data['region'][:64]!r}")
    fetched_at = fetched_at or dt.datetime.now(dt.timezone.utc)
    port = data.get("port", DEFAULT_PORT)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise KeysError("keys endpoint field 'port' must be a port number")
    expiration = data.get("expiration")
    if expiration is None:
        expires = fetched_at + dt.timedelta(seconds=DEFAULT_LIFETIME)
    elif isinstance(expiration, str):
        try:
            expires = _parse_time(expiration)
        except ValueError:
            raise KeysError("keys endpoint field 'expiration' is not an ISO 8601 time") from None
    else:
        raise KeysError("keys endpoint field 'expiration' must be an ISO 8601 string")
    host, port = _split_endpoint(data["iotEndpoint"].strip(), port)
    return TemporaryKeys(
        host=host,
        port=port,
        region=data["region"],
        access_key=data["accessKey"],
        secret_key=data["secretKey"],
        session_token=data["sessionToken"],
        expiration=expires,
        fetched_at=fetched_at,
        raw=dict(data),
    )


class KeyCache:
    """Keys saved per endpoint URL in files of mode 0600 in a folder of mode 0700, reused while
    fresh. A file another user could have written is not trusted (files.py), and a malformed one
    is ignored: both are replaced by the next fetch, with one note through `warn`."""

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None, uid: int | None = None) -> None:
        self.folder = folder
        self.uid = uid  # whose files to trust (default: this process's user)
        self._warn = warn
        self._warned: set[str] = set()

    def path(self, url: str) -> Path:
        """The cache file for one endpoint URL."""
        return self.folder / (hashlib.sha256(url.encode()).hexdigest()[:32] + ".json")

    def note(self, message: str) -> None:
        """Tell the user once why the cache was not used."""
        if self._warn is not None and message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def load(self, url: str) -> TemporaryKeys | None:
        """The cached keys for `url` if present, trusted, well-formed and fresh; else None."""
        from iotnotify.files import Unsafe, read_private

        path = self.path(url)
        try:
            data = read_private(path, self.uid)
        except Unsafe as e:
            self.note(f"ignoring the key cache: {e}")
            return None
        except OSError:
            return None  # no cached keys (or unreadable: the next fetch replaces them)
        try:
            keys = cached_keys(data, url)
        except (ValueError, TypeError, KeysError, OverflowError, RecursionError):
            self.note(f"ignoring a malformed key cache file {path}")
            return None
        return keys if keys is not None and keys.fresh() else None

    def save(self, url: str, keys: TemporaryKeys) -> None:
        """Save keys for `url`; a cache that cannot be written is not an error."""
        from iotnotify.files import Unsafe, write_private

        record = {"endpoint": url, "fetchedAt": keys.fetched_at.isoformat(), "keys": keys.raw}
        try:
            write_private(self.path(url), json.dumps(record).encode(), strict=True)
        except Unsafe as e:
            self.note(f"not caching keys: {e}")
        except OSError:
            pass


def cached_keys(data: bytes, url: str) -> TemporaryKeys | None:
    """The keys in a cache file's bytes if they were saved for `url` (None if for another URL);
    ValueError, KeysError (or, for deep nesting, RecursionError) if the file is malformed."""
    saved = json.loads(data)
    if not isinstance(saved, dict) or not isinstance(saved.get("keys"), dict) \
            or not isinstance(saved.get("fetchedAt"), str) or not isinstance(saved.get("endpoint"), str):
        raise ValueError("not a key cache record")
    if saved["endpoint"] != url:
        return None
    keys = parse_keys(saved["keys"], _parse_time(saved["fetchedAt"]))
    keys.fresh()  # raises OverflowError for times at the edge of the calendar
    return keys


class KeySource:
    """Keys from one place (an endpoint URL, or AWS credentials), cached while fresh; safe to call
    from the MQTT threads. `name` says where they come from and keys the disk cache."""

    def __init__(self, name: str, fetch: Callable[[], TemporaryKeys], cache: KeyCache | None = None) -> None:
        self.name = name
        self.fetch = fetch
        self.cache = cache
        self._lock = threading.Lock()
        self._keys: TemporaryKeys | None = None
        self.fetches = 0

    def invalidate(self) -> None:
        """Forget the keys in hand and cached (the broker refused them): the next get() fetches."""
        with self._lock:
            self._keys = None
            if self.cache is not None:
                self.cache.path(self.name).unlink(missing_ok=True)

    @property
    def current(self) -> TemporaryKeys | None:
        """The keys in hand (the last fetched or loaded), without fetching."""
        return self._keys

    def get(self, refresh: bool = False) -> TemporaryKeys:
        """Fresh keys: the ones in hand or cached if still fresh (unless `refresh`), else fetched."""
        with self._lock:
            if not refresh:
                if self._keys is not None and self._keys.fresh():
                    return self._keys
                if self.cache is not None and (cached := self.cache.load(self.name)) is not None:
                    self._keys = cached
                    return cached
            keys = self.fetch()
            self.fetches += 1
            if self.cache is not None:
                self.cache.save(self.name, keys)
            self._keys = keys
            return keys


def endpoint_source(url: str, timeout: float, cache: KeyCache | None = None) -> KeySource:
    """Keys from a keys endpoint URL."""
    def fetch() -> TemporaryKeys:
        from iotnotify.endpoint import (
            fetch_keys,  # urllib and friends: only when keys must be fetched
        )

        return fetch_keys(url, timeout)

    return KeySource(url, fetch, cache)


def key_source(endpoint: str | None, timeout: float, use_cache: bool, aws: bool = False,
               aws_profile: str | None = None, aws_role: str | None = None,
               warn: Callable[[str], None] | None = None) -> KeySource:
    """The KeySource the settings ask for: AWS credentials (--aws), else the keys endpoint; `warn`
    hears why the key cache was not used, if it was not."""
    from iotnotify.errors import ConfigError

    if aws:
        def direct() -> TemporaryKeys:
            from iotnotify.aws import direct_keys  # boto3: only in this mode

            return direct_keys(aws_profile, aws_role)

        role = f", role {aws_role}" if aws_role else ""
        return KeySource(f"AWS credentials (profile {aws_profile or 'default'}{role})", direct)
    if not endpoint:
        raise ConfigError("no keys endpoint configured: use --endpoint URL, set IOTNOTIFY_ENDPOINT, "
                          "or start `iotnotify local` and use --profile local")
    return endpoint_source(endpoint, timeout, KeyCache(default_cache_folder(), warn) if use_cache else None)


def default_cache_folder() -> Path:
    """Where keys are cached: the user's cache folder for iotnotify."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("iotnotify", appauthor=False)) / "keys"


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    return dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
