"""Checking a WebSocket upgrade's SigV4 query signature the way AWS IoT's gateway does, for the local stack.

The expected signature is computed by awscrt's own signer (the code the SDKs sign with), over the
request as the client signed it: the path without the signature and the session token (AWS IoT's
clients append the token after signing), and the headers the client says it signed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

SERVICE = "iotdevicegateway"
AUTH_PARAMS = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature",
               "X-Amz-Security-Token", "X-Amz-Expires"}
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_EXPIRES = 7 * 24 * 3600  # s, SigV4's longest presigned URL


@dataclass(frozen=True)
class KnownKeys:
    """Keys the local endpoint minted: what a signature must have been made with, and the session
    policy they were minted with."""

    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: dt.datetime
    policy: Mapping[str, Any] = field(default_factory=dict, repr=False)


Lookup = Callable[[str], "KnownKeys | None"]


class UpgradeRefused(Exception):
    """A WebSocket upgrade AWS IoT's gateway would answer with 403; the message says why."""


def verify_upgrade(path: str, headers: Mapping[str, str], lookup: Lookup, now: dt.datetime | None = None) -> KnownKeys:
    """The keys an upgrade request is signed with, if known and unexpired; else UpgradeRefused."""
    now = now or dt.datetime.now(dt.UTC)
    url = urlsplit(path)
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    access_key, region, signed_at = _scope(params)
    keys = lookup(access_key)
    if keys is None:
        raise UpgradeRefused("unknown access key")
    if keys.expiration <= now:
        raise UpgradeRefused("expired keys")
    expires = params.get("X-Amz-Expires")
    # a presigned URL (X-Amz-Expires) is good until it expires; a signature made to connect at once, within 5 minutes
    if signed_at - now > CLOCK_SKEW or (expires is None and now - signed_at > CLOCK_SKEW):
        raise UpgradeRefused("signature date too far from now")
    _check_expires(expires, signed_at, now)
    if not _same(params.get("X-Amz-Security-Token", ""), keys.session_token):
        raise UpgradeRefused("wrong session token")
    try:
        expected = _signature(url.path, params, headers, access_key, keys.secret_key, region, signed_at)
    except (RuntimeError, ValueError, TypeError):  # awscrt refuses a header or value no client signs
        expected = None
    if expected is None or not _same(expected, params["X-Amz-Signature"]):
        raise UpgradeRefused("signature does not match")
    return keys


def _scope(params: dict[str, str]) -> tuple[str, str, dt.datetime]:
    """The access key, region and signing time of a presigned request; UpgradeRefused if it is not one."""
    if "X-Amz-Signature" not in params or "X-Amz-Credential" not in params:
        raise UpgradeRefused("missing signature")
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
        raise UpgradeRefused("unsupported signing algorithm")
    try:
        access_key, day, region, service, terminator = params["X-Amz-Credential"].split("/")
        signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except (KeyError, ValueError):
        raise UpgradeRefused("malformed credential or date") from None
    if service != SERVICE or terminator != "aws4_request" or day != signed_at.strftime("%Y%m%d"):
        raise UpgradeRefused("wrong credential scope")
    return access_key, region, signed_at


def _check_expires(expires: str | None, signed_at: dt.datetime, now: dt.datetime) -> None:
    """A presigned URL lasts X-Amz-Expires seconds (1 to 7 days) from X-Amz-Date, if it says."""
    if expires is None:
        return
    if not re.fullmatch(r"[0-9]{1,6}", expires) or not 1 <= int(expires) <= MAX_EXPIRES:
        raise UpgradeRefused("malformed X-Amz-Expires")
    if now > signed_at + dt.timedelta(seconds=int(expires)):
        raise UpgradeRefused("signature expired")


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (as bytes: compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def check_upgrade(path: str, headers: Mapping[str, str], lookup: Lookup, now: dt.datetime | None = None) -> str | None:
    """None if the upgrade request is signed with known, unexpired keys; else why it is refused."""
    try:
        verify_upgrade(path, headers, lookup, now)
    except UpgradeRefused as e:
        return str(e)
    return None


def _signature(path: str, params: dict[str, str], headers: Mapping[str, str], access_key: str, secret_key: str,
               region: str, signed_at: dt.datetime) -> str | None:
    """The signature awscrt computes for this request, these keys and this time."""
    from awscrt import auth, http

    lower = {name.lower(): value for name, value in headers.items()}
    signed = params.get("X-Amz-SignedHeaders", "host").split(";")
    if any(name not in lower for name in signed):
        return None
    others = [(k, v) for k, v in params.items() if k not in AUTH_PARAMS]
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in others)
    request = http.HttpRequest("GET", path + (f"?{query}" if query else ""),
                               http.HttpHeaders([(name, lower[name]) for name in signed]))
    expires = params.get("X-Amz-Expires")
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4,
        signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(access_key, secret_key),
        region=region, service=SERVICE, date=signed_at, omit_session_token=True,
        expiration_in_seconds=int(expires) if expires else None,
    )
    auth.aws_sign_request(request, config).result(5)
    return dict(parse_qsl(urlsplit(request.path).query)).get("X-Amz-Signature")
