"""Keys from a Cognito identity pool (`--cognito-pool REGION:POOL_ID`), without the keys Lambda:
Cognito Identity's GetId (once: the identity id is cached per pool), then GetCredentialsForIdentity,
two unsigned JSON calls (the AWS JSON 1.1 protocol), for unauthenticated identities or with
`--login PROVIDER=TOKEN` logins.

Hand-written with urllib rather than awscrt's Cognito credentials provider: that provider does not
call GetId (it needs the identity id already), and always connects to port 443 with TLS, so it could
not reach `iotnotify local`'s Cognito on a loopback port; the two calls are the whole protocol."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from iotnotify.deadline import MAX_BODY, Deadline, opener, read_body
from iotnotify.errors import ConfigError, KeysError
from iotnotify.keys.model import TemporaryKeys, parse_keys
from iotnotify.shown import shown
from iotnotify.times import iso
from iotnotify.trace import log

POOL_ID = re.compile(r"(?P<region>[a-z0-9-]{1,32}):[0-9a-f-]{36}")  # `local:...` is iotnotify local's
TARGET = "AWSCognitoIdentityService."


def parse_pool(pool: str) -> str:
    """The region of an identity pool id (`eu-west-1:0a1b...`); ConfigError if it is not one."""
    match = POOL_ID.fullmatch(pool)
    if match is None:
        raise ConfigError(f"--cognito-pool {pool!r} is not an identity pool id (REGION:UUID)")
    return match.group("region")


def default_endpoint(region: str) -> str:
    """Cognito Identity's regional endpoint."""
    return f"https://cognito-identity.{region}.amazonaws.com/"


class UnknownIdentity(KeysError):
    """Cognito knows no such identity (or pool): a cached identity id may have been deleted."""


def call(endpoint: str, action: str, body: Mapping[str, Any], deadline: Deadline) -> dict[str, Any]:
    """One Cognito Identity call, all of it before `deadline`; KeysError (one line, Cognito's own
    message) if it fails."""
    import http.client

    request = urllib.request.Request(  # noqa: S310 - the endpoint is https://, or the user's (local) URL
        endpoint, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + action,
                 "User-Agent": "iotnotify"})
    log.debug("cognito: %s at %s", action, endpoint)
    try:
        # the environment's proxies, as urlopen took them (NO_PROXY is urllib's to apply)
        with opener(deadline, urllib.request.getproxies()).open(request, timeout=deadline.remaining()) as response:
            data = json.loads(read_body(response))
    except urllib.error.HTTPError as e:
        with e:
            try:
                detail = _error_of(read_body(e, 64 * 1024))
            except (OSError, ValueError, http.client.HTTPException):
                detail = ""
        kind = UnknownIdentity if detail.startswith(": ResourceNotFoundException:") else KeysError
        raise kind(f"Cognito {action} failed: HTTP {e.code}{detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as e:
        if deadline.expired or isinstance(e, TimeoutError) or isinstance(getattr(e, "reason", None), TimeoutError):
            raise KeysError(f"Cognito endpoint {endpoint} did not answer within {deadline.seconds:g} s") from None
        reason = getattr(e, "reason", e)
        raise KeysError(f"Cognito endpoint {endpoint} is unreachable: {shown(str(reason) or type(e).__name__)}") \
            from None
    except (ValueError, RecursionError):
        raise KeysError(f"Cognito {action}: the answer is not JSON (or over {MAX_BODY} bytes)") from None
    if not isinstance(data, dict):
        raise KeysError(f"Cognito {action}: the answer is not a JSON object")
    return data


def _error_of(body: bytes) -> str:
    """`: Code: message` from an AWS JSON error body, if it is one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    code = str(data.get("__type", "")).rsplit("#", 1)[-1]
    message = data.get("message") or data.get("Message") or ""
    return f": {code}: {message}" if code else (f": {message}" if message else "")


class IdentityCache:
    """The identity id of each pool (and logins), in a file of mode 0600: an unauthenticated
    identity is created once and reused, as the AWS SDKs do."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / f"identity-{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def load(self, key: str) -> str | None:
        from iotnotify.files import Unsafe, read_private

        path = self._path(key)
        if path is None:
            return None
        try:
            text = read_private(path).decode("utf-8").strip()
        except (Unsafe, OSError, UnicodeDecodeError):
            return None
        return text or None

    def forget(self, key: str) -> None:
        path = self._path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def save(self, key: str, identity: str) -> None:
        from iotnotify.files import Unsafe, write_private

        path = self._path(key)
        if path is not None:
            try:
                write_private(path, identity.encode(), strict=True)
            except (Unsafe, OSError):
                pass


def _new_identity(url: str, pool: str, body: dict[str, Any], deadline: Deadline, identities: IdentityCache,
                  key: str) -> str:
    """A new identity of the pool (GetId), kept for next time."""
    answer = call(url, "GetId", {"IdentityPoolId": pool, **body}, deadline)
    identity = answer.get("IdentityId")
    if not isinstance(identity, str) or not identity:
        raise KeysError("Cognito GetId: the answer has no IdentityId")
    identities.save(key, identity)
    return identity


def cognito_keys(pool: str, where: Callable[[], tuple[str, int, bool]], logins: Mapping[str, str],
                 endpoint: str | None = None, identities: IdentityCache | None = None,
                 timeout: float = 10.0) -> TemporaryKeys:
    """Keys for the pool's identity (GetId once, then GetCredentialsForIdentity). `where` says the
    IoT endpoint (host, port, whether AWS IoT Core's rules apply): Cognito does not."""
    region = parse_pool(pool)
    host, port, aws_rules = where()  # before any call: a configuration that lacks it fails at once
    url = endpoint or default_endpoint(region)
    identities = identities or IdentityCache(None)
    key = json.dumps([pool, url, sorted(logins)])
    identity = identities.load(key)
    body: dict[str, Any] = {"Logins": dict(logins)} if logins else {}
    with Deadline(timeout) as deadline:  # the calls in `timeout` s, however slowly Cognito (or a proxy) answers
        try:
            identity = identity or _new_identity(url, pool, body, deadline, identities, key)
            answer = call(url, "GetCredentialsForIdentity", {"IdentityId": identity, **body}, deadline)
        except UnknownIdentity:
            if identities.load(key) is None:
                raise
            identities.forget(key)  # the pool forgot the identity kept here (deleted): a new one, once
            identity = _new_identity(url, pool, body, deadline, identities, key)
            answer = call(url, "GetCredentialsForIdentity", {"IdentityId": identity, **body}, deadline)
    credentials = answer.get("Credentials")
    if not isinstance(credentials, dict):
        raise KeysError("Cognito GetCredentialsForIdentity: the answer has no Credentials")
    try:
        access, secret, token = (str(credentials[k]) for k in ("AccessKeyId", "SecretKey", "SessionToken"))
        expiration = dt.datetime.fromtimestamp(float(credentials["Expiration"]), dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        raise KeysError("Cognito GetCredentialsForIdentity: the credentials are incomplete") from None
    raw: dict[str, Any] = {"iotEndpoint": host, "port": port, "region": region, "accessKey": access,
                           "secretKey": secret, "sessionToken": token, "expiration": iso(expiration),
                           "clientId": identity, "identityId": identity}
    if aws_rules:
        raw["awsRules"] = True
    log.debug("cognito: identity %s, credentials until %s", identity, iso(expiration))
    return parse_keys(raw)
