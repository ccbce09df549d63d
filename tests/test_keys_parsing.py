"""Parsing the keys endpoint's answer: the tutorial's shape, our extensions, and what is refused."""

import datetime as dt

import pytest

from iotnotify.errors import KeysError
from iotnotify.keys import parse_keys
from tests.helpers import tutorial_keys

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def test_tutorial_shape_is_accepted_and_lasts_one_hour_on_port_443():
    keys = parse_keys(tutorial_keys("abc-ats.iot.eu-west-1.amazonaws.com"), NOW)
    assert (keys.host, keys.port, keys.region) == ("abc-ats.iot.eu-west-1.amazonaws.com", 443, "us-east-1")
    assert keys.expiration == NOW + dt.timedelta(hours=1)
    assert keys.fresh(NOW)


def test_extensions_port_and_expiration_are_used():
    keys = parse_keys(tutorial_keys(port=9443, expiration="2026-11-24T12:30:00Z", clientId="c1"), NOW)
    assert keys.port == 9443
    assert keys.expiration == dt.datetime(2026, 11, 24, 12, 30, tzinfo=dt.UTC)
    assert keys.raw["clientId"] == "c1"


def test_endpoint_given_as_url_gives_host_and_port():
    keys = parse_keys(tutorial_keys("wss://broker.example:8443/mqtt"), NOW)
    assert (keys.host, keys.port) == ("broker.example", 8443)


def test_keys_are_refreshed_shortly_before_expiry():
    keys = parse_keys(tutorial_keys(expiration="2026-11-24T13:00:00Z"), NOW)
    assert keys.fresh(NOW + dt.timedelta(minutes=54))
    assert not keys.fresh(NOW + dt.timedelta(minutes=56))
    short = parse_keys(tutorial_keys(expiration="2026-11-24T12:01:00Z"), NOW)
    assert short.fresh(NOW + dt.timedelta(seconds=44)) and not short.fresh(NOW + dt.timedelta(seconds=46))


@pytest.mark.parametrize("field", ["iotEndpoint", "region", "accessKey", "secretKey", "sessionToken"])
def test_a_missing_field_is_named(field):
    data = tutorial_keys()
    del data[field]
    with pytest.raises(KeysError, match=f"missing field '{field}'"):
        parse_keys(data)


@pytest.mark.parametrize("data, message", [
    ([1, 2], "JSON list, not an object"),
    (tutorial_keys(accessKey=12), "'accessKey' must be a non-empty string"),
    (tutorial_keys(secretKey=""), "'secretKey' must be a non-empty string"),
    (tutorial_keys(port="https"), "'port' must be a port number"),
    (tutorial_keys(port=70000), "'port' must be a port number"),
    (tutorial_keys(expiration=123), "'expiration' must be an ISO 8601 string"),
    (tutorial_keys(expiration="tomorrow"), "'expiration' is not an ISO 8601 time"),
])
def test_wrong_types_are_refused(data, message):
    with pytest.raises(KeysError, match=message):
        parse_keys(data)


def test_errors_never_contain_the_secrets():
    data = tutorial_keys(secretKey=["SECRETVALUE"], sessionToken="TOKENVALUE")
    with pytest.raises(KeysError) as info:
        parse_keys(data)
    assert "SECRETVALUE" not in str(info.value) and "TOKENVALUE" not in str(info.value)


@pytest.mark.parametrize("endpoint, message", [
    ("wss://h:99999/mqtt", "unusable iotEndpoint 'wss://h:99999/mqtt': Port out of range"),
    ("wss://[::1/mqtt", "unusable iotEndpoint 'wss://[::1/mqtt': Invalid IPv6 URL"),
    ("wss:///mqtt", "has no host"),
    ("evil.example/path", "is not a host name"),
    ("a host", "is not a host name"),
    ("-flag", "is not a host name"),
])
def test_an_endpoint_no_connection_could_be_made_to_is_a_keys_error(endpoint, message):
    with pytest.raises(KeysError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_keys(tutorial_keys(endpoint), NOW)


@pytest.mark.parametrize("endpoint, host", [("::1", "::1"), ("wss://[::1]:9443/mqtt", "::1"),
                                            ("10.0.0.1", "10.0.0.1"), ("b-1_x.example", "b-1_x.example")])
def test_ip_addresses_and_host_names_are_accepted(endpoint, host):
    assert parse_keys(tutorial_keys(endpoint), NOW).host == host


def test_a_region_that_would_break_the_signature_scope_is_refused():
    with pytest.raises(KeysError, match="field 'region' is not a region name"):
        parse_keys({**tutorial_keys(), "region": "us-east-1/iotdevicegateway"}, NOW)


def test_an_unusable_port_in_the_answer_exits_4(fake_endpoint, tmp_path):
    from tests.helpers import Cli, user_env

    fake_endpoint.answer(body=tutorial_keys("wss://h:99999/mqtt"))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 4
    assert result.stderr == ("iotnotify: error: keys endpoint answered with an unusable iotEndpoint "
                             "'wss://h:99999/mqtt': Port out of range 0-65535\n")


@pytest.mark.parametrize("url, message", [
    ("http://127.0.0.1:99999/iot/keys", "is not a valid URL: Port out of range"),
    ("http://[::1/iot/keys", "is not a valid URL: Invalid IPv6 URL"),
    ("http:///iot/keys", "has no host"),
])
def test_an_unusable_endpoint_url_is_exit_4_without_a_request(tmp_path, url, message):
    from tests.helpers import Cli, user_env

    result = Cli(user_env(tmp_path)).run("--endpoint", url, "keys")
    assert result.returncode == 4 and message in result.stderr and len(result.stderr.splitlines()) == 1
