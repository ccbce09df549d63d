"""Settings precedence: flags, then IOTNOTIFY_* environment variables, then the profile."""

import pytest

from iotnotify.errors import ConfigError
from iotnotify.settings import resolve, save_profile

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
def env(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    return {"IOTNOTIFY_CONFIG": str(path)}


def test_default_profile_applies_when_none_is_named(env):
    assert resolve({}, env=env).endpoint == "http://default.example/iot/keys"


def test_named_profile_supplies_values(env):
    settings = resolve({}, profile="work", env=env)
    assert (settings.endpoint, settings.ca_file, settings.protocol) == (
        "http://work.example/iot/keys", "/work/ca.pem", "3.1.1")


def test_environment_beats_profile_and_flags_beat_environment(env):
    env = {**env, "IOTNOTIFY_PROFILE": "work", "IOTNOTIFY_ENDPOINT": "http://env.example/k"}
    assert resolve({}, env=env).endpoint == "http://env.example/k"
    assert resolve({}, env=env).ca_file == "/work/ca.pem"
    assert resolve({"endpoint": "http://flag.example/k"}, env=env).endpoint == "http://flag.example/k"


def test_unknown_profile_is_a_config_error_listing_the_known_ones(env):
    with pytest.raises(ConfigError, match=r"unknown profile 'nope'.*default, work"):
        resolve({}, profile="nope", env=env)


def test_unknown_key_in_profile_is_named(env, tmp_path):
    (tmp_path / "config.toml").write_text('[profiles.default]\nendpont = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'endpont'"):
        resolve({}, env=env)


def test_bad_toml_is_a_config_error(env, tmp_path):
    (tmp_path / "config.toml").write_text("[profiles\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve({}, env=env)


def test_saving_a_profile_keeps_other_profiles_and_comments(env, tmp_path):
    path = tmp_path / "config.toml"
    save_profile("local", {"endpoint": "http://127.0.0.1:1/iot/keys"}, path)
    text = path.read_text()
    assert "# my settings" in text and "work.example" in text
    assert resolve({}, profile="local", env=env).endpoint == "http://127.0.0.1:1/iot/keys"


def test_a_config_file_everyone_may_write_is_refused(env, tmp_path):
    """Anyone could point the client at their own broker and keys (ssh refuses such a config too)."""
    import os

    os.chmod(tmp_path / "config.toml", 0o666)
    with pytest.raises(ConfigError, match=r"config file .*config.toml is writable by everyone: not used \(chmod o-w"):
        resolve({}, env=env)


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="only root can give a file to another user")
def test_a_config_file_of_another_user_is_refused(env, tmp_path):
    import os

    os.chown(tmp_path / "config.toml", 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match="is owned by another user: not used"):
        resolve({}, env=env)
