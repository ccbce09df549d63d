"""The tutorial's browser page in a real browser (Debian's headless Chromium, driven by Selenium):
served by `iotnotify local`, it gets keys, connects through the SigV4 check with AWS's rules on,
receives what `iotnotify send` sends and sends what `iotnotify subscribe` prints, and says so
readably when keys are refused or expired."""

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

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
    from selenium.webdriver.support.ui import Select

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
    """Keys that last 60 s: the page fetches new ones 15 s before (a quarter of their life), and the
    connection it makes after that uses them (the tutorial's page broke when its keys expired)."""
    with running_stack(tmp_path_factory.mktemp("short"), "--topics", "test/*", "--lifetime", "60") as short, \
            chromium() as driver:
        first = open_page(driver, short, topic)
        wait_until(driver, lambda d: any("keys refreshed" in line for line in log_lines(d)), "a refresh", 70)
        second = driver.execute_script("return window.iotnotifyPage.keys")
        assert second["accessKey"] != first["accessKey"]
        assert user_of(short).run("send", topic, "after the refresh").returncode == 0
        wait_until(driver, lambda d: any(line.endswith("after the refresh") for line in log_lines(d)), "a message")
