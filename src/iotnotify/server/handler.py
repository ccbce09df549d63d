"""The keys endpoint: `GET /iot/keys` as a Lambda handler (API Gateway REST v1 and HTTP v2 events).

`answer` is the endpoint itself, independent of how requests arrive; `iotnotify local` serves the
same function over HTTP with a local issuer, so the local and the AWS endpoints cannot drift apart.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iotnotify.iam import matches
from iotnotify.server.config import ConfigInvalid, EndpointConfig, load_config, origins_of
from iotnotify.server.issuers import IssueError, Issuer, StsIssuer
from iotnotify.server.policy import PolicyError, check_policy_topic
from iotnotify.times import iso
from iotnotify.web import asset


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, JSON body (None for no body), headers."""

    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def log(event: str, **fields: Any) -> None:
    """One JSON line on stdout (CloudWatch). Callers never pass secrets."""
    sys.stdout.write(json.dumps({"event": event, **fields}, default=str) + "\n")
    sys.stdout.flush()


def cors_headers(allowed: tuple[str, ...], origin: str | None = None) -> dict[str, str]:
    """CORS headers for every response, errors included: `*`, the one allowed origin, or (for
    several) the request's `origin` if it is one of them."""
    headers = {"Access-Control-Allow-Methods": "GET, OPTIONS",
               "Access-Control-Allow-Headers": "Content-Type, Authorization", "Cache-Control": "no-store"}
    if "*" in allowed or len(allowed) == 1:
        headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else allowed[0]
    else:
        headers["Vary"] = "Origin"
        if origin is not None and origin in allowed:
            headers["Access-Control-Allow-Origin"] = origin
    return headers


def origin_allowed(allowed: tuple[str, ...], origin: str | None) -> bool:
    """Whether a request may have keys: no Origin (not a browser), `*`, or an allowed origin."""
    return origin is None or "*" in allowed or origin in allowed


def new_client_id() -> str:
    """The client id the keys are for: iotnotify- and 16 hex digits."""
    return "iotnotify-" + secrets.token_hex(8)


def requested_topics(query: dict[str, str], config: EndpointConfig) -> list[str]:
    """The topics the keys are for: the configured ones, or the one `?topic=` names (PolicyError
    if it could widen a policy or is not covered by the configuration)."""
    if "topic" not in query:
        return list(config.topics)
    topic = check_policy_topic(query["topic"])
    if not any(matches(allowed, topic) for allowed in config.topics):  # exact, or PREFIX/* covering it
        raise PolicyError(f"topic {topic!r} is not one of the allowed topics")
    return [topic]


def answer(method: str, query: dict[str, str], config: EndpointConfig, issuer: Issuer,
           log: Callable[..., None] = log, origin: str | None = None) -> Response:
    """Answer one request to the keys endpoint; `log` gets one event per request (never secrets).
    A browser page from an origin not allowed gets 403 and no keys are minted for it."""
    headers = cors_headers(config.cors_origins, origin)
    if not origin_allowed(config.cors_origins, origin):
        log("origin_refused", origin=origin[:200] if origin else origin)
        return Response(403, {"message": "this origin may not get keys"}, headers)
    if method == "OPTIONS":
        return Response(204, None, headers)
    if method != "GET":
        return Response(405, {"message": "use GET"}, {**headers, "Allow": "GET, OPTIONS"})
    try:
        topics = requested_topics(query, config)
    except PolicyError as e:
        return Response(400, {"message": str(e)}, headers)
    client_id = new_client_id()
    private = f"{config.private_prefix.rstrip('/')}/{client_id}" if config.private_prefix else None
    try:
        where = issuer.where()
        policy = config.session_policy(where.region, where.account, client_id, topics, private, where.partition)
        keys = issuer.issue(client_id, policy, config.lifetime)
    except IssueError as e:
        log("keys_failed", step=e.step, error=e.detail)
        return Response(502, {"message": str(e)}, headers)
    log("keys_issued", clientId=client_id, topics=topics, privateTopic=private, accessKey=keys.access_key,
        expiration=keys.expiration)
    body: dict[str, Any] = {
        "iotEndpoint": where.host,
        "region": where.region,
        "accessKey": keys.access_key,
        "secretKey": keys.secret_key,
        "sessionToken": keys.session_token,
        "expiration": iso(keys.expiration),
        "port": where.port,
        "clientId": client_id,
        "topics": topics,
    }
    if private is not None:
        body["privateTopic"] = private
    if config.lifecycle_events:
        body["lifecycleEvents"] = True  # the keys may subscribe to and receive $aws/events/...
    if not config.shared_subscriptions:
        body["sharedSubscriptions"] = False  # nor may they subscribe to $share/NAME/...
    return Response(200, body, headers)


_state: dict[str, Any] = {}  # per warm container: the config (None if invalid) and the issuer


def _setup() -> tuple[EndpointConfig | None, Issuer]:
    """Read the configuration and build the STS issuer once per container."""
    if "issuer" not in _state:
        try:
            _state["config"] = load_config()
        except ConfigInvalid as e:
            log("config_invalid", error=str(e))
            _state["config"] = None
        import boto3

        role = _state["config"].role if _state["config"] else ""
        _state["issuer"] = StsIssuer(boto3.client("iot"), boto3.client("sts"), role)
    return _state["config"], _state["issuer"]


def request_of(event: dict[str, Any]) -> tuple[str, dict[str, str], str | None]:
    """Method, query parameters and Origin header from an API Gateway proxy event, HTTP API (v2) or
    REST API (v1); anything of the wrong shape counts as absent."""
    def mapping(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    if event.get("version") == "2.0":
        method = mapping(mapping(event.get("requestContext")).get("http")).get("method", "GET")
    else:
        method = event.get("httpMethod", "GET")
    query = {k: v for k, v in mapping(event.get("queryStringParameters")).items()
             if isinstance(k, str) and isinstance(v, str)}
    origins = [v for k, v in mapping(event.get("headers")).items()
               if isinstance(k, str) and k.lower() == "origin" and isinstance(v, str)]
    return (method if isinstance(method, str) else "").upper(), query, origins[0] if origins else None


def to_api_gateway(response: Response) -> dict[str, Any]:
    """A Response as the proxy integration's return value."""
    body = "" if response.body is None else json.dumps(response.body)
    headers = dict(response.headers)
    if response.body is not None:
        headers["Content-Type"] = "application/json"
    return {"statusCode": response.status, "headers": headers, "body": body, "isBase64Encoded": False}


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    """Lambda entry point for `GET /iot/keys` (and its CORS preflight), and the tutorial's page
    (`GET /`, `GET /static/...`)."""
    event = event if isinstance(event, dict) else {}
    method, query, origin = request_of(event)
    path = path_of(event)
    if method == "GET" and (page := asset(path, cognito_pool=_cognito_pool(), cognito_url=_cognito_url())) is not None:
        return {"statusCode": 200, "headers": page.headers, "body": page.body.decode("utf-8"), "isBase64Encoded": False}
    if not is_keys_path(path):  # /favicon.ico, /static/nope.js: no keys, as the local endpoint answers
        import os

        return to_api_gateway(Response(404, {"message": f"not found: use GET {KEYS_PATH}"},
                                       cors_headers(origins_of(os.environ.get("IOTNOTIFY_CORS_ORIGIN", "")), origin)))
    config, issuer = _setup()
    if config is None:
        import os

        origins = origins_of(os.environ.get("IOTNOTIFY_CORS_ORIGIN", ""))
        return to_api_gateway(Response(500, {"message": "the keys endpoint is misconfigured (see its logs)"},
                                       cors_headers(origins)))
    return to_api_gateway(answer(method, query, config, issuer, origin=origin))


def _cognito_pool() -> str | None:
    """The identity pool the page may also get keys from (IOTNOTIFY_COGNITO_POOL: the template sets it)."""
    import os

    return os.environ.get("IOTNOTIFY_COGNITO_POOL") or None


def _cognito_url() -> str | None:
    """Where the page calls Cognito Identity (IOTNOTIFY_COGNITO_ENDPOINT, as the client's setting;
    default the pool region's endpoint): the page's CSP allows that origin and no other."""
    import os

    return os.environ.get("IOTNOTIFY_COGNITO_ENDPOINT") or None


KEYS_PATH = "/iot/keys"


def is_keys_path(path: str) -> bool:
    """Whether a request to `path` (the stage's or a custom domain's prefix before it, if any) asks
    for keys; "" (an event with no path: the function invoked directly) does."""
    return path in ("", KEYS_PATH) or path.endswith(KEYS_PATH)


def path_of(event: dict[str, Any]) -> str:
    """The request's path without the stage: HTTP API (v2) `rawPath` (the `$default` stage adds
    nothing), REST API (v1) `path`; "" if there is none."""
    path = event.get("rawPath") if event.get("version") == "2.0" else event.get("path")
    return path if isinstance(path, str) else ""
