"""Malformed requests thrown at the keys endpoint's Lambda handler (API Gateway v1 and v2 events)
and at the local wss front (odd upgrade requests): never a 5xx or a traceback, never a secret in a
body or a log line, never keys wider than configured."""

import json
import socket
import ssl

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from iotnotify.iam import matches
from iotnotify.local.keys_server import LocalIssuer
from iotnotify.server import handler as lambda_handler
from iotnotify.server.config import EndpointConfig
from iotnotify.server.handler import is_keys_path
from iotnotify.web import asset

CONFIG = EndpointConfig(topics=("a/b", "alerts/*"), cors_origins=("https://app.example", "https://b.example"),
                        private_prefix="users")
ALLOWED_RESOURCES = {"topic": ("a/b", "alerts/*"), "topicfilter": ("a/b", "alerts/*")}

text = st.text(max_size=40)
odd_strings = text | st.sampled_from(["a/b", "alerts/x/y", "alerts/*", "a/#", "${iot:ClientId}", "\x00", "é" * 300,
                                      "https://app.example", "https://evil.example", "null", "GET", "OPTIONS"])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | odd_strings,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_strings, inner, max_size=3),
                           max_leaves=12)
methods = st.sampled_from(["GET", "OPTIONS", "POST", "PUT", "DELETE", "get", "HEAD", "", "G\u00c9T"]) | text
queries = st.none() | st.fixed_dictionaries({"topic": odd_strings}) | st.dictionaries(st.sampled_from(["topic", "Topic", "x", ""]) | text, odd_strings | json_values,
                                      max_size=3) | json_values
headers = st.none() | st.dictionaries(st.sampled_from(["Origin", "origin", "ORIGIN", "Host", "x"]) | text,
                                      odd_strings | json_values, max_size=3) | json_values
bodies = st.none() | text | st.just("x" * 1_000_000)


@st.composite
def events(draw):
    """API Gateway proxy events, v2 (HTTP API) or v1 (REST API), with anything in their fields, or any JSON."""
    kind = draw(st.sampled_from(["v2", "v1", "any"]))
    if kind == "any":
        return draw(json_values)
    event = {"queryStringParameters": draw(queries), "headers": draw(headers), "body": draw(bodies),
             "isBase64Encoded": draw(st.booleans())}
    if kind == "v2":
        event |= {"version": "2.0", "rawPath": draw(odd_strings),
                  "requestContext": draw(st.just({"http": {"method": draw(methods), "path": draw(odd_strings)}})
                                         | json_values)}
    else:
        event |= {"httpMethod": draw(methods | json_values), "path": draw(odd_strings), "resource": "/iot/keys"}
    return event


@pytest.fixture
def endpoint(monkeypatch):
    """The Lambda handler in a warm container whose issuer is the local stack's (real keys, no AWS)."""
    issuer = LocalIssuer("127.0.0.1", 9443)
    monkeypatch.setitem(lambda_handler._state, "config", CONFIG)
    monkeypatch.setitem(lambda_handler._state, "issuer", issuer)
    return issuer


def within_configuration(resource: str) -> bool:
    """Whether a session policy's resource ARN is one the configuration allows."""
    kind, _, name = resource.split(":", 5)[5].partition("/")
    if kind == "client":
        return name.startswith("iotnotify-")
    if kind == "topicfilter" and name.startswith("$share/*/"):  # the same filter in shared subscriptions
        name = name.removeprefix("$share/*/")
    if name.startswith("users/iotnotify-"):  # the private topic: subscribe and receive only
        return True
    return any(matches(allowed, name) for allowed in ALLOWED_RESOURCES.get(kind, ()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events())
@example(event={"queryStringParameters": None, "headers": None, "body": None, "isBase64Encoded": False,
                "version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET", "path": ""}}})  # the page
def test_the_handler_answers_any_event_safely(endpoint, capsys, event):
    before = set(endpoint._minted)
    response = lambda_handler.handler(event)
    logged = capsys.readouterr().out
    assert set(response) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert response["statusCode"] in (200, 204, 400, 403, 404, 405), response
    path = lambda_handler.path_of(event if isinstance(event, dict) else {})
    if response["headers"].get("Content-Type") != "application/json" and response["statusCode"] == 200:
        # the page or one of its files (not JSON), at their own paths only, and no keys for them
        assert asset(path) is not None and response["body"] == asset(path).body.decode(), event
        assert set(endpoint._minted) == before
        return
    body = json.loads(response["body"]) if response["body"] else None
    if response["statusCode"] == 200:  # keys only at the keys path
        assert is_keys_path(path), event
    minted = [endpoint._minted[k] for k in set(endpoint._minted) - before]
    for keys in minted:  # secrets go in the 200 body only, never in a log line
        assert keys.secret_key not in logged and keys.session_token not in logged
        for statement in keys.policy["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(within_configuration(r) for r in resources), statement
    if response["statusCode"] == 200:
        assert len(minted) == 1 and body["secretKey"] == minted[0].secret_key
        assert set(body["topics"]) <= {"a/b", "alerts/*"} or (
            len(body["topics"]) == 1 and matches("alerts/*", body["topics"][0]))
    else:
        assert minted == []
        assert body is None or set(body) == {"message"}
        assert "Traceback" not in logged


def raw_request(port: int, ca_file: str, request: bytes) -> bytes:
    """Send raw bytes to the wss front over TLS; the first line of its answer (b"" if it closed)."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(request)
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, ssl.SSLError, TimeoutError):
            return b""
    return answer.split(b"\r\n", 1)[0]


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
header_lines = st.lists(st.tuples(st.sampled_from(["Origin", "Upgrade", "Connection", "Sec-WebSocket-Key",
                                                   "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Host"])
                                  | header_text.filter(lambda s: s and ":" not in s), header_text), max_size=8)
paths = st.sampled_from(["/mqtt", "/mqtt?", "/mqtt?X-Amz-Signature=%FF%FE", "/", "*", "/mqtt?X-Amz-Expires=99999999999",
                         ("/mqtt?X-Amz-Credential=a/b/c&X-Amz-Signature=x&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                         "&X-Amz-Date=20260101T000000Z")]) | header_text.map(lambda s: "/mqtt?" + s)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "HEAD", "get", "BREW"]), path=paths, lines=header_lines,
       version=st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "JUNK"]))
def test_the_front_answers_odd_upgrades_without_a_5xx(stack, method, path, lines, version):
    head = f"{method} {path.replace(' ', '%20')} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines)
    status_line = raw_request(stack.wss_port, stack.ca_file, (head + "\r\n").encode())
    assert not status_line.startswith(b"HTTP/1.1 5"), status_line


def test_the_fronts_log_has_no_traceback_and_no_secret(stack, cli):
    minted = json.loads(cli.run("keys", "--json", "--no-cache").stdout)
    raw_request(stack.wss_port, stack.ca_file, f"GET /mqtt?X-Amz-Security-Token={minted['sessionToken']} HTTP/1.1\r\n"
                "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".encode())
    log = stack.log()
    assert "Traceback" not in log
    assert minted["sessionToken"] not in log and minted["secretKey"] not in log
