"""`iotnotify keys` against the local endpoint, the cache, and every way an endpoint can fail."""

import json
import os
import stat
import subprocess

import pytest

from tests.helpers import Cli, tutorial_keys, user_env


def test_keys_are_shown_with_secrets_redacted(cli):
    result = cli.run("keys", "--no-cache")
    assert result.returncode == 0, result.stderr
    shown = dict(line.split(None, 1) if "  " not in line else [p.strip() for p in line.split("  ", 1)]
                 for line in result.stdout.splitlines())
    assert shown["iot endpoint"].startswith("127.0.0.1:")
    assert shown["region"] == "local"
    assert shown["access key"].startswith("ASIA")
    assert "--show-secrets" in shown["secret key"] and "--show-secrets" in shown["session token"]
    assert "expires" in shown


def test_no_secret_appears_without_show_secrets(cli):
    full = json.loads(cli.run("keys", "--json").stdout)
    text = cli.run("keys").stdout
    assert full["secretKey"] not in text and full["sessionToken"] not in text
    shown = cli.run("keys", "--show-secrets").stdout
    assert full["secretKey"] in shown and full["sessionToken"] in shown


def test_json_has_the_full_answer(cli, stack):
    data = json.loads(cli.run("keys", "--json").stdout)
    assert {"iotEndpoint", "region", "accessKey", "secretKey", "sessionToken", "port", "expiration"} <= set(data)
    assert data["port"] == stack.wss_port


def test_export_lines_work_with_eval(cli):
    exports = cli.run("keys", "--export").stdout
    full = json.loads(cli.run("keys", "--json").stdout)
    shell = subprocess.run(["bash", "-c", exports + '\necho "$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY"'],
                           capture_output=True, text=True)
    assert shell.stdout.split() == [full["accessKey"], full["secretKey"]]


def test_cache_file_is_private_and_reused(stack, tmp_path):
    cli = Cli({**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": stack.endpoint})  # a cache of its own
    cli.run("keys", "--no-cache")  # never writes the cache
    first = json.loads(cli.run("keys", "--json").stdout)
    second = json.loads(cli.run("keys", "--json").stdout)
    assert first["accessKey"] == second["accessKey"]  # the endpoint mints new keys per request
    fresh = json.loads(cli.run("keys", "--json", "--no-cache").stdout)
    assert fresh["accessKey"] != first["accessKey"]
    folder = cli.env["XDG_CACHE_HOME"] + "/iotnotify/keys"
    files = os.listdir(folder)
    assert len(files) == 1
    assert stat.S_IMODE(os.stat(os.path.join(folder, files[0])).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_tutorial_shape_is_accepted(fake_endpoint, tmp_path):
    fake_endpoint.answer(body=tutorial_keys("abc-ats.iot.eu-west-1.amazonaws.com"))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 0, result.stderr
    assert "abc-ats.iot.eu-west-1.amazonaws.com:443" in result.stdout
    assert "(in 59 min)" in result.stdout


def test_no_endpoint_configured(tmp_path):
    result = Cli(user_env(tmp_path)).run("keys")
    assert result.returncode == 3
    assert result.stderr.strip() == (
        "iotnotify: error: no keys endpoint configured: use --endpoint URL (or IOTNOTIFY_ENDPOINT, or a profile), "
        "--aws for your AWS credentials, --cognito-pool REGION:ID for an identity pool, or start `iotnotify local` "
        "and use --profile local")


def test_the_groups_options_work_after_the_command_too(tmp_path):
    """As the aws CLI's: `iotnotify keys --profile nope` is `iotnotify --profile nope keys`."""
    after = Cli(user_env(tmp_path)).run("keys", "--profile", "nope")
    assert after.returncode == 3, after.stderr
    assert "unknown profile 'nope'" in after.stderr
    assert Cli(user_env(tmp_path)).run("keys", "--keys-timeout", "nan").returncode == 2


def test_unknown_profile(tmp_path):
    result = Cli(user_env(tmp_path)).run("--profile", "nope", "keys")
    assert result.returncode == 3
    assert "unknown profile 'nope'" in result.stderr


def test_unreachable_endpoint(tmp_path):
    from tests.helpers import free_port

    result = Cli(user_env(tmp_path)).run("--endpoint", f"http://127.0.0.1:{free_port()}/iot/keys", "keys")
    assert result.returncode == 4
    assert "is unreachable" in result.stderr and len(result.stderr.splitlines()) == 1


def test_slow_endpoint_times_out(fake_endpoint, tmp_path):
    fake_endpoint.answer(body=tutorial_keys(), delay=3)
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "--keys-timeout", "0.5", "keys")
    assert result.returncode == 4
    assert "did not answer within 0.5 s" in result.stderr


@pytest.mark.parametrize("status, body, expected", [
    (500, '{"message": "Internal server error"}', "answered HTTP 500: Internal server error"),
    (403, "<html><body>Forbidden</body></html>", "answered HTTP 403: <html><body>Forbidden</body></html>"),
    (502, "x" * 500, "answered HTTP 502: " + "x" * 77 + "..."),
    (200, "<html>maintenance</html>", "did not answer JSON: '<html>maintenance</html>'"),
    (200, "", "did not answer JSON"),
    (200, "[]", "JSON list, not an object"),
    (200, {"iotEndpoint": "h", "region": "r", "accessKey": "a", "secretKey": "s"}, "missing field 'sessionToken'"),
    (200, tutorial_keys(region=5), "field 'region' must be a non-empty string"),
    (200, tutorial_keys(port=False), "field 'port' must be a port number"),
])
def test_bad_endpoint_answers(fake_endpoint, tmp_path, status, body, expected):
    fake_endpoint.answer(status, body)
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 4
    assert expected in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_endpoint_errors_never_show_secrets(fake_endpoint, tmp_path):
    fake_endpoint.answer(200, tutorial_keys(port="x"))
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 4
    assert "SECRET" not in result.stderr and "TOKEN" not in result.stderr


def test_not_an_http_url(tmp_path):
    result = Cli(user_env(tmp_path)).run("--endpoint", "ftp://x/iot/keys", "keys")
    assert result.returncode == 4 and "not an http:// or https:// URL" in result.stderr


def test_expired_cached_keys_are_fetched_again(fake_endpoint, tmp_path):
    import datetime as dt

    cli = Cli(user_env(tmp_path))
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake_endpoint.answer(body=tutorial_keys(expiration=past))
    assert "(expired)" in cli.run("--endpoint", fake_endpoint.url, "keys").stdout
    cli.run("--endpoint", fake_endpoint.url, "keys")
    assert fake_endpoint.requests == 2
    fake_endpoint.answer(body=tutorial_keys())  # the tutorial's keys: one hour
    cli.run("--endpoint", fake_endpoint.url, "keys")
    cli.run("--endpoint", fake_endpoint.url, "keys")
    assert fake_endpoint.requests == 3


@pytest.mark.parametrize("how", [["--no-cache", "keys"], ["keys", "--no-cache"], ["keys"]])
def test_no_cache_from_either_position_or_the_environment(fake_endpoint, tmp_path, how):
    fake_endpoint.answer(body=tutorial_keys())
    cli = Cli({**user_env(tmp_path), **({"IOTNOTIFY_NO_CACHE": "1"} if how == ["keys"] else {})})
    for _ in range(2):
        assert cli.run("--endpoint", fake_endpoint.url, *how).returncode == 0
    assert fake_endpoint.requests == 2
    assert not os.path.exists(cli.env["XDG_CACHE_HOME"] + "/iotnotify/keys")


def test_endpoint_from_environment_and_flag_after_the_command(fake_endpoint, tmp_path):
    fake_endpoint.answer(body=tutorial_keys("env.example"))
    env = {**user_env(tmp_path), "IOTNOTIFY_ENDPOINT": fake_endpoint.url}
    assert "env.example:443" in Cli(env).run("keys").stdout
    result = Cli(user_env(tmp_path)).run("keys", "--endpoint", fake_endpoint.url, "--no-cache")
    assert "env.example:443" in result.stdout


def test_endpoint_answering_500_twice_then_200_succeeds(fake_endpoint, tmp_path):
    fake_endpoint.then(500, '{"message": "Internal server error"}').then(503, "busy").answer(body=tutorial_keys())
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 0, result.stderr
    assert fake_endpoint.requests == 3


def test_endpoint_answering_403_fails_fast_with_its_message(fake_endpoint, tmp_path):
    fake_endpoint.answer(403, '{"message": "Forbidden"}')
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 4
    assert result.stderr.strip() == f"iotnotify: error: keys endpoint {fake_endpoint.url} answered HTTP 403: Forbidden"
    assert fake_endpoint.requests == 1


def test_retries_are_bounded(fake_endpoint, tmp_path):
    fake_endpoint.answer(502, "bad gateway")
    result = Cli(user_env(tmp_path)).run("--endpoint", fake_endpoint.url, "keys")
    assert result.returncode == 4 and "answered HTTP 502: bad gateway" in result.stderr
    assert fake_endpoint.requests == 3
