"""Settings precedence, as a user meets it: the command's flag, the same flag before the command,
the IOTNOTIFY_* variable, the profile, the default (click's envvar and default_map); and the
profile's own checks."""

import os

import click
import pytest

from iotnotify.booleans import FALSE, TRUE, parse_bool
from iotnotify.errors import ConfigError
from iotnotify.settings import load_profile, save_profile
from tests.helpers import Cli, user_env

CONFIG = """\
# my settings
[profiles.default]
endpoint = "http://default.example/iot/keys"

[profiles.work]
endpoint = "http://work.example/iot/keys"
ca_file = "/work/ca.pem"
protocol = "3.1.1"
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return path


def endpoint_used(tmp_path, config, *args, **env) -> str:
    """The endpoint `iotnotify ... keys` would fetch from: a URL of a scheme no one serves, named in
    the one-line error (exit 4) without any request."""
    result = Cli({**user_env(tmp_path), "IOTNOTIFY_CONFIG": str(config), **env}).run(*args)
    assert result.returncode == 4, result.stderr
    return result.stderr.split("keys endpoint ", 1)[1].split(" is not", 1)[0].strip("'")


@pytest.mark.parametrize("args, env, used", [
    (["keys"], {}, "profile://default"),
    (["-p", "work", "keys"], {}, "profile://work"),
    (["keys"], {"IOTNOTIFY_PROFILE": "work"}, "profile://work"),
    (["keys"], {"IOTNOTIFY_ENDPOINT": "env://x"}, "env://x"),
    (["--endpoint", "before://x", "keys"], {"IOTNOTIFY_ENDPOINT": "env://x"}, "before://x"),
    (["--endpoint", "before://x", "keys", "--endpoint", "after://x"], {"IOTNOTIFY_ENDPOINT": "env://x"}, "after://x"),
])
def test_flag_after_then_before_the_command_then_environment_then_profile(tmp_path, args, env, used):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.default]\nendpoint = "profile://default"\n[profiles.work]\nendpoint = "profile://work"\n')
    assert endpoint_used(tmp_path, config, *args, **env) == used


def test_the_profile_holds_every_setting_a_command_takes(config):
    values = load_profile("work", config)
    assert (values["endpoint"], values["ca_file"], values["protocol"]) == (
        "http://work.example/iot/keys", "/work/ca.pem", "3.1.1")


def test_unknown_profile_is_a_config_error_listing_the_known_ones(config):
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*default, work"):
        load_profile("nope", config)


@pytest.mark.parametrize("line, message", [
    ('endpont = "x"', "unknown key 'endpont'"),
    ("keys_timeout = \"ten\"", "keys_timeout = 'ten' is not a number"),
    ("keys_timeout = 0", "keys_timeout must be a positive number of seconds"),
    ("keys_timeout = nan", "keys_timeout must be a positive number of seconds"),
    ("keys_timeout = inf", "keys_timeout must be a positive number of seconds"),
    ("keys_timeout = 1e300", "at most a year"),
    ("keepalive = 70000", "keepalive must be 0 to 65535 seconds"),
    ("keepalive = -1", "keepalive must be 0 to 65535 seconds"),
    ('protocol = "4"', "protocol '4' is not one of 5, 3.1.1"),
    ('no_cache = "yes"', "no_cache = 'yes' is not a boolean"),
    ("endpoint = 5", "endpoint = 5 is not a string"),
])
def test_a_profile_value_of_the_wrong_kind_is_a_config_error_naming_it(tmp_path, line, message):
    path = tmp_path / "config.toml"
    path.write_text(f"[profiles.default]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_profile(None, path)
    result = Cli({**user_env(tmp_path), "IOTNOTIFY_CONFIG": str(path)}).run("keys")
    assert result.returncode == 3 and message in result.stderr


def test_bad_toml_is_a_config_error(config):
    config.write_text("[profiles\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_profile(None, config)


@pytest.mark.parametrize("variable, value, message", [
    ("IOTNOTIFY_NO_CACHE", "maybe", ("Invalid value for '--no-cache' (env var: 'IOTNOTIFY_NO_CACHE'): 'maybe' is not a "
                                    "valid boolean")),
    ("IOTNOTIFY_PROTOCOL", "4", "Invalid value for '--protocol' (env var: 'IOTNOTIFY_PROTOCOL'): '4' is not one of"),
    ("IOTNOTIFY_KEYS_TIMEOUT", "soon", "Invalid value for '--keys-timeout' (env var: 'IOTNOTIFY_KEYS_TIMEOUT')"),
])
def test_a_bad_environment_variable_is_a_usage_error_naming_it(tmp_path, config, variable, value, message):
    result = Cli({**user_env(tmp_path), "IOTNOTIFY_CONFIG": str(config), variable: value}).run("send", "t", "x")
    assert result.returncode == 2 and result.stderr.startswith(f"iotnotify: error: {message}")
    assert len(result.stderr.splitlines()) == 1


def test_help_names_each_environment_variable(tmp_path):
    text = Cli(user_env(tmp_path)).run("send", "--help").stdout
    for variable in ("IOTNOTIFY_ENDPOINT", "IOTNOTIFY_CA_FILE", "IOTNOTIFY_NO_CACHE", "IOTNOTIFY_PROTOCOL"):
        assert f"env var: {variable}" in " ".join(text.split())


@pytest.mark.parametrize("word", sorted(TRUE | FALSE | {"maybe", "2", "Yes ", " OFF"}))
def test_one_reading_of_true_and_false_for_the_cli_and_the_lambda(word):
    """IOTNOTIFY_NO_CACHE (click) and IOTNOTIFY_ANY_CLIENT_ID (the Lambda) read words alike."""
    try:
        theirs = click.BOOL.convert(word, None, None)
    except click.BadParameter:
        theirs = None
    try:
        ours = parse_bool(word)
    except ValueError:
        ours = None
    assert ours == theirs


def test_saving_a_profile_keeps_other_profiles_and_comments(config):
    save_profile("local", {"endpoint": "http://127.0.0.1:1/iot/keys"}, config)
    text = config.read_text()
    assert "# my settings" in text and "work.example" in text
    assert load_profile("local", config)["endpoint"] == "http://127.0.0.1:1/iot/keys"


def test_a_profile_is_saved_by_replacing_the_file_whole(config):
    """`iotnotify local` writes its profile while scripts it started may read the file: they must
    see the old file or the new one (a new inode, renamed into place), never a half-written one."""
    before = config.stat().st_ino
    save_profile("local", {"endpoint": "http://127.0.0.1:1/iot/keys"}, config)
    assert config.stat().st_ino != before
    assert config.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in config.parent.iterdir()) == [config.name]


def test_a_config_file_that_is_a_link_stays_one(config, tmp_path):
    """(A dotfiles manager links ~/.config/iotnotify/config.toml to its own copy.)"""
    real = tmp_path / "dotfiles-config.toml"
    real.write_text(config.read_text())
    config.unlink()
    config.symlink_to(real)
    save_profile("local", {"endpoint": "http://127.0.0.1:1/iot/keys"}, config)
    assert config.is_symlink() and "127.0.0.1:1" in real.read_text()


def test_a_config_file_everyone_may_write_is_refused(config):
    """Anyone could point the client at their own broker and keys (ssh refuses such a config too)."""
    os.chmod(config, 0o666)
    with pytest.raises(ConfigError, match=r"config file .*config.toml is writable by everyone: not used \(chmod o-w"):
        load_profile(None, config)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_config_file_of_another_user_is_refused(config):
    os.chown(config, 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match="is owned by another user: not used"):
        load_profile(None, config)


def test_help_reads_no_config_file(tmp_path):
    """--help works (and is quick) whatever the config file holds; a command using it says what is wrong."""
    broken = tmp_path / "config.toml"
    broken.write_text("[profiles\n")
    cli = Cli({**user_env(tmp_path), "IOTNOTIFY_CONFIG": str(broken)})
    assert cli.run("send", "--help").returncode == 0
    result = cli.run("send", "t", "x")
    assert result.returncode == 3 and "cannot read config file" in result.stderr


def test_profile_persist_is_a_duration(tmp_path):
    from iotnotify.errors import ConfigError
    from iotnotify.settings import from_environment, resolve

    config = tmp_path / "config.toml"
    config.write_text('[profiles.default]\npersist = "10m"\n[profiles.bad]\npersist = "soon"\n'
                      '[profiles.empty]\npersist = ""\n')
    assert resolve(None, config, {}).persist == 600.0
    assert resolve(None, config, {"persist": 30.0}).persist == 30.0  # --persist / IOTNOTIFY_PERSIST, parsed by click
    for profile, value in (("bad", "soon"), ("empty", "")):
        with pytest.raises(ConfigError, match=f"persist = '{value}' is not a duration"):
            resolve(profile, config, {})
    with pytest.raises(ValueError):  # a variable click would refuse: the quick path leaves it to click
        from_environment(None, {"IOTNOTIFY_CONFIG": str(tmp_path / "none.toml"), "IOTNOTIFY_PERSIST": "soon"})


SAMPLES = {str: ("text", "text"), bool: ("yes", True), int: ("45", 45), float: ("2.5", 2.5),
           tuple: ("google=tok1 apple=tok2", (("google", "tok1"), ("apple", "tok2")))}


def test_every_row_of_the_settings_table_is_an_option_a_variable_and_a_profile_key(tmp_path, monkeypatch):
    """settings.ROWS is the one list of settings: each row becomes the option it names (on the
    commands it says, with its variable), is read from its variable where click is not loaded (the
    quick path's from_environment), and, unless said otherwise, may be held by a profile."""
    from iotnotify.cli import cli
    from iotnotify.cli.client import send_command
    from iotnotify.cli.tail import tail_command
    from iotnotify.settings import CONNECT, GROUP, IDENTITY_FIELDS, KEYS, PROFILE_KEYS, ROWS, from_environment, variable

    for name, row in ROWS.items():
        where = {KEYS: [cli, send_command], CONNECT: [send_command], GROUP: [cli]}.get(row.on, [send_command, tail_command])
        options = [p for command in where for p in command.params if p.name == name and isinstance(p, click.Option)]
        assert options and all(row.flag in option.opts for option in options), name
        assert any(option.envvar == variable(name) for option in options) is row.env, name
        assert (name in PROFILE_KEYS) is row.profile, name

    env = {"IOTNOTIFY_CONFIG": str(tmp_path / "none.toml")}
    logins = tmp_path / "logins"
    logins.write_text("google=tok\n")
    for name, row in ROWS.items():
        text, value = ("3.1.1", "3.1.1") if row.choices else ("10m", 600.0) if row.duration else \
            (str(logins), str(logins)) if name == "login_file" else SAMPLES[row.kind]
        chosen = from_environment(None, {**env, variable(name): text})
        assert getattr(chosen, name) == value, name
    assert set(IDENTITY_FIELDS) == {"endpoint", "ca_file", "protocol", "client_id", "aws", "aws_profile", "aws_role",
                                    "keepalive", "proxy", "cognito_pool", "cognito_endpoint", "iot_endpoint", "logins"}


def test_a_profile_holds_a_value_of_each_rows_kind(tmp_path):
    from iotnotify.settings import ROWS, resolve

    path, logins = tmp_path / "config.toml", tmp_path / "logins"
    logins.write_text("google=tok\n")
    values = {"str": '"x"', "bool": "true", "int": "45", "float": "2.5"}
    rows = {name: row for name, row in ROWS.items() if row.profile}
    lines = [f"{name} = " + ('"5"' if row.choices else '"10m"' if row.duration else f'"{logins}"'
                             if name == "login_file" else values[row.kind.__name__]) for name, row in rows.items()]
    path.write_text("[profiles.default]\n" + "\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    chosen = resolve(None, path, {})
    assert (chosen.endpoint, chosen.no_cache, chosen.keepalive, chosen.keys_timeout, chosen.persist, chosen.logins) == (
        "x", True, 45, 2.5, 600.0, (("google", "tok"),))
