"""Showing temporary keys: redacted text for people, JSON and shell exports for scripts."""

from __future__ import annotations

import json
import shlex

from iotnotify.keys.model import TemporaryKeys
from iotnotify.shown import LINE, shown
from iotnotify.times import iso, now_utc

REDACTED = "******** (--show-secrets to show)"


def as_text(keys: TemporaryKeys, source: str, show_secrets: bool) -> str:
    """Aligned `name  value` lines; the secret key and session token redacted unless asked; what the
    endpoint said with its control and bidi characters escaped (shown.py)."""
    minutes = int(keys.expires_in(now_utc()) // 60)
    rows = [
        ("keys from", source),
        ("iot endpoint", f"{keys.host}:{keys.port}"),
        ("region", keys.region),
        ("access key", keys.access_key),
        ("secret key", keys.secret_key if show_secrets else REDACTED),
        ("session token", "(none: long-term keys)" if not keys.session_token else
         keys.session_token if show_secrets else REDACTED),
    ]
    if client_id := keys.raw.get("clientId"):
        rows.append(("client id", f"{client_id} (and {client_id}-...)"))
    if isinstance(topics := keys.raw.get("topics"), list):
        rows.append(("topics", ", ".join(map(str, topics))))
    if private := keys.raw.get("privateTopic"):
        rows.append(("private topic", str(private)))
    expiry = f"in {minutes} min" if minutes >= 0 else "expired"
    rows.append(("expires", f"{iso(keys.expiration)} ({expiry})"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {shown(value, LINE)}" for name, value in rows)  # the endpoint's text


def as_json(keys: TemporaryKeys) -> str:
    """The endpoint's full JSON answer, with port and expiration filled in."""
    data = dict(keys.raw)
    data.setdefault("port", keys.port)
    data.setdefault("expiration", iso(keys.expiration))
    return json.dumps(data, indent=2)


def as_exports(keys: TemporaryKeys) -> str:
    """`export NAME=value` lines for eval, quoted for the shell."""
    values = {
        "AWS_ACCESS_KEY_ID": keys.access_key,
        "AWS_SECRET_ACCESS_KEY": keys.secret_key,
        "AWS_REGION": keys.region,
        "IOTNOTIFY_IOT_ENDPOINT": f"{keys.host}:{keys.port}",
    }
    if keys.session_token:  # long-term keys (--aws without a role) have none
        values["AWS_SESSION_TOKEN"] = keys.session_token
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in values.items())


def described(keys: TemporaryKeys) -> str:
    """What the trace says of a set of keys: never the secret key or session token."""
    parts = [f"access key {keys.access_key}", f"expire {iso(keys.expiration)}", f"endpoint {keys.host}:{keys.port}"]
    client = keys.raw.get("clientId")
    if isinstance(client, str):
        parts.append(f"client id {client}")
    topics = keys.raw.get("topics")
    if isinstance(topics, list):
        parts.append("topics " + ", ".join(str(t) for t in topics))
    if keys.aws_rules:
        parts.append("AWS rules")
    return ", ".join(parts)
