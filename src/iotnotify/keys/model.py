"""Temporary keys as the keys endpoint answers them: the leaf type every other module builds on."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from iotnotify.errors import KeysError
from iotnotify.times import parse_iso
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
        now = now or dt.datetime.now(dt.UTC)
        return (self.expiration - now).total_seconds()

    @property
    def aws_rules(self) -> bool:
        """Whether the broker plays by AWS IoT Core's rules (limits, throttle): an AWS endpoint, or
        keys that say so (`"awsRules": true`, from `iotnotify local`)."""
        return is_aws_host(self.host) or self.raw.get("awsRules") is True

    def fresh(self, now: dt.datetime | None = None) -> bool:
        """Whether the keys are still good for a new connection (not within the refresh margin)."""
        return self.fresh_for(now) > 0

    def fresh_for(self, now: dt.datetime | None = None) -> float:
        """Seconds until the keys are no longer fresh (negative once they are not)."""
        lifetime = (self.expiration - self.fetched_at).total_seconds()
        margin = min(MAX_REFRESH_MARGIN, max(lifetime, 0) / 4)
        return self.expires_in(now) - margin


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


def _check_required(data: Any) -> None:
    """KeysError naming the first of the tutorial's five fields that is missing or not a string
    (the credentials: of the characters AWS's keys are made of, which is never a control one)."""
    if not isinstance(data, dict):
        raise KeysError(f"keys endpoint answered with JSON {type(data).__name__}, not an object")
    for name in REQUIRED:
        if name not in data:
            raise KeysError(f"keys endpoint answer is missing field {name!r}")
        if not isinstance(data[name], str) or not data[name].strip():
            raise KeysError(f"keys endpoint field {name!r} must be a non-empty string")
    for name in ("accessKey", "secretKey", "sessionToken"):  # AWS's are base64 or alphanumeric
        if not (data[name].isascii() and data[name].isprintable()):
            raise KeysError(f"keys endpoint field {name!r} holds characters no AWS key has")


def parse_keys(data: Any, fetched_at: dt.datetime | None = None) -> TemporaryKeys:
    """Turn the endpoint's JSON into TemporaryKeys, naming any missing or mistyped field."""
    _check_required(data)
    if not REGION.fullmatch(data["region"]):
        raise KeysError(f"keys endpoint field 'region' is not a region name: {data['region'][:64]!r}")
    fetched_at = fetched_at or dt.datetime.now(dt.UTC)
    port = data.get("port", DEFAULT_PORT)
    if isinstance(port, str) and port.isascii() and port.isdecimal():  # "²".isdigit(), and int() refuses it
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise KeysError("keys endpoint field 'port' must be a port number")
    expiration = data.get("expiration")
    if expiration is None:
        expires = fetched_at + dt.timedelta(seconds=DEFAULT_LIFETIME)
    elif isinstance(expiration, str):
        try:
            expires = parse_iso(expiration)
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
