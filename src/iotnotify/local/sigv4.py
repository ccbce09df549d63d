"""Checking SigV4 signatures the way AWS IoT does, for the local stack: a WebSocket upgrade's query
signature (service iotdevicegateway) and an HTTPS publish's Authorization header (service iotdata).

The expected signature is computed by awscrt's own signer (the code the SDKs sign with), over the
request as the client signed it: for an upgrade, the path without the signature and the session
token (AWS IoT's clients append the token after signing); the headers the client says it signed;
for a publish, its body too.
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
DATA_SERVICE = "iotdata"  # the HTTPS data plane's signing name (POST /topics/...)
AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})")
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
    access_key: str = ""  # the principal lifecycle events name
    identity: str | None = None  # the Cognito identity the keys are for (${cognito-identity.amazonaws.com:sub})
    authenticated: bool = False  # that identity signed in (a login): an AWS IoT policy attached to it must allow too


Lookup = Callable[[str], "KnownKeys | None"]


class UpgradeRefused(Exception):
    """A request (a WebSocket upgrade, an HTTPS publish) AWS IoT would answer with 403; the message says why."""


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
    return _credential(params["X-Amz-Credential"], params.get("X-Amz-Date"), SERVICE)


def _credential(credential: str, date: str | None, service: str) -> tuple[str, str, dt.datetime]:
    """(access key, region, signing time) of a credential scope and X-Amz-Date, for `service`."""
    try:
        access_key, day, region, named, terminator = credential.split("/")
        signed_at = dt.datetime.strptime(date or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise UpgradeRefused("malformed credential or date") from None
    if named != service or terminator != "aws4_request" or day != signed_at.strftime("%Y%m%d"):
        raise UpgradeRefused("wrong credential scope")
    return access_key, region, signed_at


def verify_signed_request(method: str, target: str, headers: Mapping[str, str], body: bytes, lookup: Lookup,
                          now: dt.datetime | None = None) -> KnownKeys:
    """The keys an HTTPS data-plane request (SigV4 in its Authorization header, as AWS IoT's HTTPS
    publish takes it) is signed with, if known and unexpired; else UpgradeRefused."""
    now = now or dt.datetime.now(dt.UTC)
    lower = {name.lower(): value for name, value in headers.items()}
    found = AUTHORIZATION.fullmatch(lower.get("authorization", "").strip())
    if found is None:
        raise UpgradeRefused("missing or malformed Authorization header")
    credential, signed_names, signature = found.groups()
    access_key, region, signed_at = _credential(credential, lower.get("x-amz-date"), DATA_SERVICE)
    keys = lookup(access_key)
    if keys is None:
        raise UpgradeRefused("unknown access key")
    if keys.expiration <= now:
        raise UpgradeRefused("expired keys")
    if abs(signed_at - now) > CLOCK_SKEW:
        raise UpgradeRefused("signature date too far from now")
    if not _same(lower.get("x-amz-security-token", ""), keys.session_token):
        raise UpgradeRefused("wrong session token")
    signed = signed_names.split(";")
    if any(name not in lower for name in signed) or "host" not in signed:
        raise UpgradeRefused("signature does not match")
    try:
        expected = _header_signature(method, target, [(n, lower[n]) for n in signed], body, access_key, keys,
                                     region, signed_at)
    except (RuntimeError, ValueError, TypeError):
        expected = None
    if expected is None or not _same(expected, signature):
        raise UpgradeRefused("signature does not match")
    return keys


def _header_signature(method: str, target: str, headers: list[tuple[str, str]], body: bytes, access_key: str,
                      keys: KnownKeys, region: str, signed_at: dt.datetime) -> str | None:
    """The Authorization header's signature awscrt computes for this request, these keys and this time."""
    import io

    from awscrt import auth, http

    own = ("x-amz-date", "x-amz-security-token")  # the signer adds these itself, from the date and the keys
    request = http.HttpRequest(method, target, http.HttpHeaders([(n, v) for n, v in headers if n not in own]),
                               io.BytesIO(body))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=auth.AwsCredentialsProvider.new_static(access_key, keys.secret_key, keys.session_token),
        region=region, service=DATA_SERVICE, date=signed_at)
    auth.aws_sign_request(request, config).result(5)
    found = AUTHORIZATION.fullmatch(request.headers.get("Authorization") or "")
    return found.group(3) if found else None


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
