"""Behind a proxy: the keys fetch, the wss connection and the TLS probe go through a real HTTP
proxy (Debian's tinyproxy) given by HTTPS_PROXY/HTTP_PROXY or --proxy; NO_PROXY skips it; a proxy
that refuses or is away is named in a one-line error."""

import pytest

from tests.helpers import Cli, free_port, tinyproxy


def through(cli: Cli, **env: str) -> Cli:
    return Cli({**cli.env, **env})


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_environments_proxy_carries_the_keys_fetch_and_the_connection(cli, stack, tmp_path, topic, protocol):
    with tinyproxy(tmp_path) as proxy:
        user = through(cli, HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url)
        sub = user.subscriber(tmp_path, topic, "-C", "1", "-W", "20", "--protocol", protocol, "--no-cache")
        result = user.run("send", topic, "through the proxy", "--protocol", protocol, "--no-cache", "--debug")
        assert result.returncode == 0, result.stderr
        out, err = sub.communicate(timeout=30)
        assert (sub.returncode, out) == (0, b"through the proxy\n"), err
        relayed = proxy.relayed()
        assert f"GET http://127.0.0.1:{stack.keys_port}/iot/keys" in relayed
        assert relayed.count(f"CONNECT 127.0.0.1:{stack.wss_port}") >= 2  # the subscriber and the sender
        assert f"CONNECT through proxy {proxy.url}" in result.stderr


def test_the_proxy_flag_and_the_profile_key(cli, stack, tmp_path, topic):
    with tinyproxy(tmp_path) as proxy:
        assert cli.run("send", topic, "x", "--proxy", proxy.url).returncode == 0
        assert f"CONNECT 127.0.0.1:{stack.wss_port}" in proxy.relayed()
    with tinyproxy(tmp_path / "second") as proxy:
        config = tmp_path / "config.toml"
        config.write_text(f'[profiles.local]\nendpoint = "{stack.endpoint}"\nca_file = "{stack.ca_file}"\n'
                          f'proxy = "{proxy.url}"\n')
        config.chmod(0o600)
        assert through(cli, IOTNOTIFY_CONFIG=str(config)).run("send", topic, "x").returncode == 0
        assert f"CONNECT 127.0.0.1:{stack.wss_port}" in proxy.relayed()


def test_a_proxy_that_refuses_the_tunnel_is_named(cli, stack, tmp_path, topic):
    with tinyproxy(tmp_path, deny=True) as proxy:
        result = through(cli, HTTPS_PROXY=proxy.url).run("send", topic, "x")  # keys over http: not through it
        assert result.returncode == 5
        assert result.stderr == (f"iotnotify: error: proxy {proxy.url} refused the tunnel to 127.0.0.1:"
                                 f"{stack.wss_port}: HTTP/1.0 403 Access denied\n")


def test_a_proxy_that_refuses_the_keys_fetch_is_named(cli, stack, tmp_path, topic):
    with tinyproxy(tmp_path, deny=True) as proxy:
        result = through(cli, HTTP_PROXY=proxy.url).run("send", topic, "x", "--no-cache")
        assert result.returncode == 4
        assert result.stderr == (f"iotnotify: error: keys endpoint {stack.endpoint} answered HTTP 403: 403 Access "
                                 f"denied (through proxy {proxy.url})\n")


def test_a_proxy_that_is_away_is_named(cli, topic):
    away = f"http://127.0.0.1:{free_port()}"
    result = cli.run("send", topic, "x", "--proxy", away)
    assert result.returncode == 5
    assert result.stderr == f"iotnotify: error: proxy {away} is unreachable: Connection refused\n"


def test_no_proxy_reaches_loopback_directly(cli, tmp_path, topic):
    with tinyproxy(tmp_path, deny=True) as proxy:  # would refuse anything it were asked
        user = through(cli, HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
        assert user.run("send", topic, "direct", "--no-cache").returncode == 0
        assert user.run("send", topic, "direct", "--proxy", proxy.url).returncode == 0  # NO_PROXY holds for --proxy
        assert "Request" not in proxy.relayed()


@pytest.mark.parametrize("value, error", [
    ("https://proxy.example:3128", "--proxy: only http:// proxies are supported, not https://"),
    ("http://proxy.example:99999", "--proxy 'proxy.example:99999': the port is not a number from 1 to 65535"),
])
def test_a_bad_proxy_url_is_a_usage_error(cli, topic, value, error):
    result = cli.run("send", topic, "x", "--proxy", value)
    assert (result.returncode, result.stderr) == (2, f"iotnotify: error: {error}\n")
