"""Keys from a Cognito identity pool: through `iotnotify local`'s own Cognito (its keys pass the
SigV4 check and its policy applies), and the request shapes against moto's cognito-identity."""

import json
import stat
from pathlib import Path

import boto3
import pytest

from tests.helpers import Cli, user_env

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def cognito(cli: Cli) -> Cli:
    """The CLI with the profile `iotnotify local` writes for its identity pool, and a cache of its own."""
    return Cli({**cli.env, "IOTNOTIFY_PROFILE": "local-cognito"})


def test_keys_from_the_local_pool_connect_and_deliver(cognito, tmp_path, topic):
    keys = json.loads(cognito.run("keys", "--json").stdout)
    assert keys["identityId"].startswith("local:") and keys["clientId"] == keys["identityId"]
    sub = cognito.subscriber(tmp_path, topic, "-C", "1", "-W", "20")
    sent = cognito.run("send", topic, "through cognito")
    assert sent.returncode == 0, sent.stderr
    out, err = sub.communicate(timeout=30)
    assert (sub.returncode, out) == (0, b"through cognito\n"), err


def test_the_identity_is_made_once_and_kept_private(cognito, cli, stack):
    first = json.loads(cognito.run("keys", "--json", "--no-cache").stdout)
    second = json.loads(cognito.run("keys", "--json", "--no-cache").stdout)
    assert first["identityId"] == second["identityId"]  # GetId once per pool
    assert first["accessKey"] != second["accessKey"]  # new keys each GetCredentialsForIdentity
    cache = sorted((stack.state.parent / "xdg_cache_home" / "iotnotify" / "keys").glob("identity-*"))
    assert cache and all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in cache)


def test_the_policy_holds_for_cognito_keys(cognito, topic):
    result = cognito.run("send", "elsewhere/x", "no")
    assert result.returncode == 10
    assert "0x87 not authorized to publish to 'elsewhere/x'" in result.stderr


@pytest.mark.parametrize("flags, code, error", [
    (["--cognito-pool", "not-a-pool"], 3, "--cognito-pool 'not-a-pool' is not an identity pool id (REGION:UUID)"),
    (["--cognito-pool", "local:00000000-0000-4000-8000-000000000000"], 4,
     "Cognito GetId failed: HTTP 400: ResourceNotFoundException: IdentityPool"),
])
def test_a_bad_pool_is_a_one_line_error(cognito, flags, code, error):
    result = cognito.run("keys", *flags, "--no-cache")
    assert result.returncode == code
    assert result.stderr.startswith(f"iotnotify: error: {error}")


def test_cognito_keys_need_an_iot_endpoint(tmp_path):
    user = Cli({**user_env(tmp_path), "IOTNOTIFY_COGNITO_POOL": "eu-west-1:00000000-0000-4000-8000-000000000000"})
    result = user.run("keys")
    assert result.returncode == 3
    assert "keys from a Cognito pool need the AWS IoT endpoint: use --iot-endpoint HOST" in result.stderr


def test_the_calls_have_cognitos_shape(moto_url, tmp_path):
    """moto's cognito-identity (server mode) answers GetId and GetCredentialsForIdentity as AWS does:
    our unsigned JSON 1.1 calls are the ones it understands, and --login goes along."""
    client = boto3.client("cognito-identity", region_name="eu-west-1", endpoint_url=moto_url,
                          aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")
    pool = client.create_identity_pool(IdentityPoolName="notifications",
                                       AllowUnauthenticatedIdentities=True)["IdentityPoolId"]
    user = Cli(user_env(tmp_path))
    result = user.run("keys", "--json", "--cognito-pool", pool, "--cognito-endpoint", moto_url + "/",
                      "--iot-endpoint", "abc123-ats.iot.eu-west-1.amazonaws.com",
                      "--login", "accounts.google.com=eyJ.example.token")
    assert result.returncode == 0, result.stderr
    keys = json.loads(result.stdout)
    assert (keys["accessKey"], keys["secretKey"], keys["sessionToken"]) == ("TESTACCESSKEY12345", "ABCSECRETKEY",
                                                                          "ABC12345")  # moto's
    assert (keys["iotEndpoint"], keys["port"], keys["region"]) == ("abc123-ats.iot.eu-west-1.amazonaws.com", 443,
                                                                   "eu-west-1")
    assert keys["awsRules"] is True  # an AWS IoT endpoint: AWS's limits and pacing on
    assert "eyJ.example.token" not in result.stderr
    text = user.run("keys", "--cognito-pool", pool, "--cognito-endpoint", moto_url + "/",
                    "--iot-endpoint", "abc123-ats.iot.eu-west-1.amazonaws.com").stdout
    assert "ABCSECRETKEY" not in text and "ABC12345" not in text


def logins_of(tmp_path, *args: str, stdin: str = "", **env: str):
    """The Cognito logins a command's flags, variables and profile give (the settings it resolves)."""
    import click

    from iotnotify.cli import cli
    from iotnotify.cli.options import resolve_settings
    from tests.helpers import run_in_process

    seen = []

    @click.pass_context
    def capture(ctx: click.Context, **_flags: object) -> None:
        seen.append(resolve_settings(ctx).logins)

    keys = cli.get_command(click.Context(cli), "keys")
    original, keys.callback = keys.callback, capture
    try:
        result = run_in_process(["keys", *args], {**user_env(tmp_path), **env}, stdin.encode())
    finally:
        keys.callback = original
    return result, seen[0] if seen else None


def test_logins_come_from_a_file_stdin_a_variable_or_the_profile_not_only_argv(tmp_path):
    path = tmp_path / "logins"
    path.write_text("# my identity provider\naccounts.example=eyJ.file.token\n\nother.example=eyJ.second\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.default]\nlogin_file = "{path}"\n')
    expected = (("accounts.example", "eyJ.file.token"), ("other.example", "eyJ.second"))
    assert logins_of(tmp_path, "--login-file", str(path))[1] == expected
    assert logins_of(tmp_path, "--login-file", "-", stdin=path.read_text())[1] == expected
    assert logins_of(tmp_path, IOTNOTIFY_LOGIN="accounts.example=eyJ.file.token other.example=eyJ.second")[1] == \
        expected
    assert logins_of(tmp_path, IOTNOTIFY_LOGIN_FILE=str(path))[1] == expected
    assert logins_of(tmp_path, IOTNOTIFY_CONFIG=str(config))[1] == expected
    assert logins_of(tmp_path, "--login", "a=b", IOTNOTIFY_CONFIG=str(config))[1] == (("a", "b"),)  # the flag first


def test_the_quick_paths_read_the_login_variable_too(tmp_path):
    from iotnotify.settings import from_environment

    settings = from_environment(None, {"IOTNOTIFY_LOGIN": "accounts.example=eyJ.token",
                                       "IOTNOTIFY_CONFIG": str(tmp_path / "none.toml")})
    assert settings.logins == (("accounts.example", "eyJ.token"),)


@pytest.mark.parametrize("content, code, said", [
    (None, 3, "cannot read --login-file"),
    ("# nothing\n", 2, "no PROVIDER=TOKEN line in it"),
    ("accounts.example eyJ.secret.token\n", 2, "give PROVIDER=TOKEN"),
])
def test_a_login_file_that_cannot_work_is_one_line_without_the_token(tmp_path, content, code, said):
    path = tmp_path / "logins"
    if content is not None:
        path.write_text(content)
    result, _ = logins_of(tmp_path, "--login-file", str(path))
    assert result.returncode == code
    assert said in result.stderr and len(result.stderr.splitlines()) == 1
    assert "eyJ.secret.token" not in result.stderr


def test_a_login_from_stdin_reaches_the_local_pool_as_another_identity(cognito):
    unauthenticated = json.loads(cognito.run("keys", "--json", "--no-cache").stdout)["identityId"]
    result = cognito.run("keys", "--json", "--no-cache", "--login-file", "-", input="accounts.example=eyJ.t\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["identityId"] != unauthenticated  # a login: an identity of its own


def test_a_signed_in_identity_needs_an_iot_policy_attached(cognito, stack, tmp_path, topic):
    """AWS IoT asks an authenticated identity's attached AWS IoT policies as well as its role's:
    without one it is refused; `setup-cognito --local` attaches the policy setup-cognito makes on
    AWS (the identity id as client id, through ${cognito-identity.amazonaws.com:sub}), and then it
    connects. An unauthenticated identity needs none (test_keys_from_the_local_pool_connect_and_deliver)."""
    login = ["--login", f"accounts.example=eyJ.signed.in.{topic}"]
    identity = json.loads(cognito.run(*login, "keys", "--json").stdout)["identityId"]
    refused = cognito.run(*login, "send", topic, "before")
    assert refused.returncode == 10, refused.stderr
    assert f"authenticated Cognito identity {identity} has no AWS IoT policy attached" in stack.log()
    attached = cognito.run("setup-cognito", "--local", "--identity", identity, "--topics", "test/*")  # the stack's
    assert attached.returncode == 0, attached.stderr
    assert f"attached to {identity}" in attached.stdout
    policies = stack.state / "iotnotify" / "local" / "iot-policies.json"
    assert stat.S_IMODE(policies.stat().st_mode) == 0o600
    sub = cognito.subscriber(tmp_path, *login, topic, "-C", "1", "-W", "20")
    sent = cognito.run(*login, "send", topic, "after")
    assert sent.returncode == 0, sent.stderr
    out, err = sub.communicate(timeout=30)
    assert (sub.returncode, out) == (0, b"after\n"), err
    again = cognito.run("setup-cognito", "--local", "--identity", identity, "--topics", "test/*")
    assert f"already attached to {identity}" in again.stdout


@pytest.mark.parametrize("content, args, code, said", [
    (None, ["--region", "eu-west-1"], 2, "--local attaches the policy for the local stack: --region and --aws-profile"),
    (b"not json", [], 8, "cannot attach the policy for the local stack: "),
    (b'{"policies": {}, "targets": {"x": "not a list"}}', [], 8, "not a file of attached policies"),
])
def test_setup_cognito_local_errors_are_one_line(tmp_path, content, args, code, said):
    env = user_env(tmp_path)
    if content is not None:
        folder = Path(env["XDG_STATE_HOME"]) / "iotnotify" / "local"
        folder.mkdir(parents=True, mode=0o700)
        (folder / "iot-policies.json").write_bytes(content)
        (folder / "iot-policies.json").chmod(0o600)
    result = Cli(env).run("setup-cognito", "--local", "--identity", "local:1", *args)
    assert result.returncode == code and said in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
