"""`iotnotify completion`: click's scripts, run by a real bash; profile names and topics completed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Cli

BIN = str(Path(sys.executable).parent)  # where `iotnotify` is installed, as a user's PATH has it


def completed(cli: Cli, *words: str) -> list[str]:
    """What bash completes after `iotnotify WORDS...` (the last word being completed), with the script
    `iotnotify completion bash` printed."""
    script = cli.run("completion", "bash").stdout
    words_array = " ".join(f"'{w}'" for w in ("iotnotify", *words))
    program = (f"{script}\nCOMP_WORDS=({words_array}); COMP_CWORD={len(words)}; _iotnotify_completion iotnotify; "
               'printf "%s\\n" "${COMPREPLY[@]}"')
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30,
                            env={**cli.env, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_commands_and_flags_are_completed(cli):
    assert completed(cli, "re") == ["request", "respond", "retained"]
    assert "--will-topic" in completed(cli, "subscribe", "--wi")


def test_profile_names_are_completed(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.local]\nendpoint = "http://x"\n[profiles.prod]\nendpoint = "https://y"\n'
                      '[profiles.staging]\nendpoint = "https://z"\n')
    config.chmod(0o600)
    with_config = Cli({**cli.env, "IOTNOTIFY_CONFIG": str(config)})
    assert completed(with_config, "--profile", "") == ["local", "prod", "staging"]
    assert completed(with_config, "--profile", "st") == ["staging"]


def test_tail_and_subscribe_complete_the_profiles_topic_and_the_cached_keys_topics(cli, stack, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.local]\nendpoint = "{stack.endpoint}"\nca_file = "{stack.ca_file}"\n'
                      'topic = "ops/alerts"\n')
    config.chmod(0o600)
    user = Cli({**cli.env, "IOTNOTIFY_CONFIG": str(config), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert completed(user, "--profile", "local", "tail", "") == ["ops/alerts"]  # no keys cached yet
    keys = json.loads(user.run("keys", "--json").stdout)  # now they are
    allowed = [t.replace("/*", "/#") for t in keys["topics"]]  # IAM's PREFIX/* is MQTT's PREFIX/#
    assert "test/#" in allowed
    assert completed(user, "--profile", "local", "tail", "") == ["ops/alerts", *allowed]
    assert completed(user, "--profile", "local", "subscribe", "te") == [t for t in allowed if t.startswith("te")]


@pytest.mark.parametrize("shell, marker", [("zsh", "#compdef iotnotify"),
                                           ("fish", "complete --no-files --command iotnotify")])
def test_zsh_and_fish_scripts_are_clicks(cli, shell, marker):
    result = cli.run("completion", shell)
    assert result.returncode == 0
    assert marker in result.stdout and "_IOTNOTIFY_COMPLETE" in result.stdout


def test_an_unknown_shell_is_a_usage_error(cli):
    result = cli.run("completion", "powershell")
    assert result.returncode == 2
    assert result.stderr.startswith("iotnotify: error: Invalid value for '{bash|zsh|fish}'")
