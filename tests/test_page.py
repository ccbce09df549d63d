"""The tutorial's browser page in a real browser (Debian's headless Chromium, driven by Selenium):
served by `iotnotify local`, it gets keys, connects through the SigV4 check with AWS's rules on,
receives what `iotnotify send` sends and sends what `iotnotify subscribe` prints, and says so
readably when keys are refused or expired."""

import contextlib
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import chromium, log_lines
from tests.helpers import running_stack, user_of

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def wait_until(driver, condition, what: str, timeout: float = 20):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
    except TimeoutException:
        raise AssertionError(f"the page never showed {what}; its log: {log_lines(driver)}") from None


def state(driver) -> str:
    return driver.find_element(By.ID, "state").text


def open_page(driver, stack, topic: str | None = None) -> dict:
    """Load the page, retrieve keys, (set the topic) and connect; the keys the page holds."""
    driver.get(stack.page)
    driver.find_element(By.ID, "retrieve").click()
    wait_until(driver, lambda d: state(d) == "keys ready: connect", "keys ready")
    if topic is not None:
        box = driver.find_element(By.ID, "topic")
        box.clear()
        box.send_keys(topic)
    driver.find_element(By.ID, "connect").click()
    wait_until(driver, lambda d: state(d).startswith("connected as "), "connected")
    wait_until(driver, lambda d: any(line.endswith(" subscribed") for line in log_lines(d)), "subscribed")
    return driver.execute_script("return window.iotnotifyPage.keys")


def test_the_page_connects_with_scoped_keys_and_never_shows_the_secret(browser, stack, topic):
    keys = open_page(browser, stack, topic)
    assert state(browser).startswith(f"connected as {keys['clientId']}-page-")  # the keys' client id, scoped
    text = browser.find_element(By.TAG_NAME, "body").text
    assert keys["accessKey"] in text and f"127.0.0.1:{stack.wss_port}" in text
    assert keys["secretKey"] not in browser.page_source and keys["sessionToken"] not in browser.page_source
    assert "********" in text


def test_a_message_sent_by_the_cli_shows_in_the_log(browser, stack, cli, topic):
    open_page(browser, stack, topic)
    assert cli.run("send", topic, "hello from the terminal").returncode == 0
    wait_until(browser, lambda d: any(line.endswith(f"{topic} hello from the terminal") for line in log_lines(d)),
               "the message")
    received = browser.find_elements(By.CSS_SELECTOR, "#log li.received")
    assert received and received[-1].text.endswith("hello from the terminal")  # newest at the bottom


def test_a_message_sent_from_the_page_is_printed_by_subscribe(browser, stack, cli, tmp_path, topic):
    open_page(browser, stack, topic)
    sub = cli.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "-v")
    box = browser.find_element(By.ID, "message")
    box.send_keys("hello from the page")
    browser.find_element(By.ID, "send").click()
    out, err = sub.communicate(timeout=30)
    assert (sub.returncode, out.decode()) == (0, f"{topic} hello from the page\n"), err
    wait_until(browser, lambda d: any("hello from the page" in e.text
                                      for e in d.find_elements(By.CSS_SELECTOR, "#log li.sent")), "the sent line")


def test_refused_keys_are_said_on_the_page(browser, stack, topic):
    open_page(browser, stack, topic)
    browser.find_element(By.ID, "disconnect").click()
    browser.execute_script("window.iotnotifyPage.keys.secretKey = 'not-the-secret'")
    browser.find_element(By.ID, "connect").click()
    wait_until(browser, lambda d: "error" in d.find_element(By.ID, "state").get_attribute("class"), "an error")
    assert state(browser) == (f"could not connect to 127.0.0.1:{stack.ws_port}: the broker refused the keys "
                              "(expired or not accepted) or is unreachable")


def test_expired_keys_are_said_on_the_page(browser, stack, topic):
    open_page(browser, stack, topic)
    browser.find_element(By.ID, "disconnect").click()
    browser.execute_script("window.iotnotifyPage.keys.expiration = '2000-01-01T00:00:00Z'")
    browser.find_element(By.ID, "connect").click()
    assert state(browser) == "the keys have expired: retrieve new keys"
    assert log_lines(browser)[-1].endswith("the keys have expired: retrieve new keys")


def test_a_topic_the_keys_do_not_allow_is_said_before_sending(browser, stack, topic):
    open_page(browser, stack, topic)
    box = browser.find_element(By.ID, "topic")
    box.clear()
    box.send_keys("elsewhere/x")
    browser.find_element(By.ID, "message").send_keys("no")
    browser.find_element(By.ID, "send").click()
    assert "elsewhere/x not sent: the keys do not allow it (they allow" in log_lines(browser)[-1]


def test_the_page_gets_keys_from_the_local_cognito_pool_too(browser, stack, cli, topic):
    browser.get(stack.page)
    Select(browser.find_element(By.ID, "source")).select_by_value("cognito")
    browser.find_element(By.ID, "retrieve").click()
    wait_until(browser, lambda d: state(d) == "keys ready: connect", "keys ready")
    identity = browser.find_element(By.ID, "key-client").text
    assert identity.startswith("local:")  # a Cognito identity, the client id its policy allows
    box = browser.find_element(By.ID, "topic")
    box.clear()
    box.send_keys(topic)
    browser.find_element(By.ID, "connect").click()
    wait_until(browser, lambda d: state(d).startswith(f"connected as {identity}-page-"), "connected")
    wait_until(browser, lambda d: any(line.endswith(" subscribed") for line in log_lines(d)), "subscribed")
    assert cli.run("send", topic, "to a cognito identity").returncode == 0
    wait_until(browser, lambda d: any(line.endswith("to a cognito identity") for line in log_lines(d)), "the message")


@pytest.mark.slow
def test_keys_are_refreshed_before_they_expire(tmp_path_factory, topic):
    """Keys that last 20 s: the page fetches new ones 5 s before (a quarter of their life), and the
    connection it makes after that uses them (the tutorial's page broke when its keys expired)."""
    with running_stack(tmp_path_factory.mktemp("short"), "--topics", "test/*", "--lifetime", "20") as short, \
            chromium() as driver:
        first = open_page(driver, short, topic)
        wait_until(driver, lambda d: any("keys refreshed" in line for line in log_lines(d)), "a refresh", 30)
        second = driver.execute_script("return window.iotnotifyPage.keys")
        assert second["accessKey"] != first["accessKey"]
        assert user_of(short).run("send", topic, "after the refresh").returncode == 0
        wait_until(driver, lambda d: any(line.endswith("after the refresh") for line in log_lines(d)), "a message")


@contextlib.contextmanager
def http_server(handle):
    """An HTTP server on loopback whose every request `handle(request_handler)` answers."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        do_POST = do_OPTIONS = do_GET  # noqa: N815 - http.server's naming

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(request, status: int, headers: dict, body: bytes) -> None:
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


POOL = "eu-west-1:0a1b2c3d-0000-4000-8000-000000000001"


def stub_cognito(calls: list[str]):
    """Cognito Identity's two calls, as AWS answers them (CORS included) to a page of any origin."""
    cors = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "content-type, x-amz-target",
            "Access-Control-Allow-Methods": "POST"}

    def handle(request) -> None:
        if request.command == "OPTIONS":
            reply(request, 200, cors, b"")
            return
        action = request.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        calls.append(action)
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        body = {"IdentityId": "eu-west-1:stub-identity"} if action == "GetId" else {
            "IdentityId": "eu-west-1:stub-identity", "Credentials": {
                "AccessKeyId": "ASIASTUB", "SecretKey": "stub-secret", "SessionToken": "stub-token",
                "Expiration": time.time() + 3600}}
        reply(request, 200, {**cors, "Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode())

    return handle


def lambda_behind_gateway(monkeypatch):
    """The Lambda handler as API Gateway (HTTP API, v2 events) invokes it, with the local issuer's keys."""
    from iotnotify.local.keys_server import LocalIssuer
    from iotnotify.server import handler
    from iotnotify.server.config import EndpointConfig

    monkeypatch.setitem(handler._state, "config", EndpointConfig(topics=("test/*",)))
    monkeypatch.setitem(handler._state, "issuer", LocalIssuer("127.0.0.1", 9443))

    def handle(request) -> None:
        path, _, query = request.path.partition("?")
        answer = handler.handler({"version": "2.0", "rawPath": path, "rawQueryString": query,
                                  "headers": dict(request.headers.items()),
                                  "requestContext": {"http": {"method": request.command, "path": path}}})
        reply(request, answer["statusCode"], answer["headers"], answer["body"].encode())

    return handle


def test_the_deployed_page_may_call_the_configured_pools_cognito_and_no_other(browser, monkeypatch):
    calls: list[str] = []
    with http_server(stub_cognito(calls)) as cognito:
        monkeypatch.setenv("IOTNOTIFY_COGNITO_POOL", POOL)
        monkeypatch.setenv("IOTNOTIFY_COGNITO_ENDPOINT", cognito + "/")
        with http_server(lambda_behind_gateway(monkeypatch)) as api:
            page = urllib.request.urlopen(api + "/")
            csp = page.headers["Content-Security-Policy"]
            assert f"connect-src 'self' ws: wss: {cognito};" in csp  # that origin, and no other
            browser.get(api + "/")
            Select(browser.find_element(By.ID, "source")).select_by_value("cognito")
            browser.find_element(By.ID, "retrieve").click()
            wait_until(browser, lambda d: state(d) == "keys ready: connect", "keys ready")
    assert calls == ["GetId", "GetCredentialsForIdentity"]
    assert browser.find_element(By.ID, "key-client").text == "eu-west-1:stub-identity"


def test_the_deployed_pages_csp_names_the_pool_regions_cognito_by_default(monkeypatch):
    from iotnotify.server import handler

    monkeypatch.setenv("IOTNOTIFY_COGNITO_POOL", POOL)
    monkeypatch.delenv("IOTNOTIFY_COGNITO_ENDPOINT", raising=False)
    answer = handler.handler({"version": "2.0", "rawPath": "/", "requestContext": {"http": {"method": "GET"}}})
    csp = answer["headers"]["Content-Security-Policy"]
    assert "connect-src 'self' ws: wss: https://cognito-identity.eu-west-1.amazonaws.com;" in csp
