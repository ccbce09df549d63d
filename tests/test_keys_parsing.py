"""Parsing the keys endpoint's answer: the tutorial's shape, our extensions, and what is refused."""

import datetime as dt

import pytest
from conftest import tutorial_keys

from iotnotify.errors import KeysError
from iotnotify.keys import parse_keys

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


def test_tutorial_shape_is_accepted_and_lasts_one_hour_on_port_443():
    keys = parse_keys(tutorial_keys("abc-ats.iot.eu-west-1.amazonaws.com"), NOW)
    assert (keys.host, keys.port, keys.region) == ("abc-ats.iot.eu-west-1.amazonaws.com", 443, "us-east-1")
    assert keys.expiration == NOW + dt.timedelta(hours=1)
    assert keys.fresh(NOW)


def test_extensions_port_and_expiration_are_used():
    keys = parse_keys(tutorial_keys(port=9443, expiration="2026-11-24T12:30:00Z", clientId="c1"), NOW)
    assert keys.port == 9443
    assert keys.expiration == dt.datetime(2026, 11, 24, 12, 30, tzinfo=dt.timezone.utc)
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
