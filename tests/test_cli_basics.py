"""The command as a whole: version, `python -m`, help with examples, and a fast, boto3-free path."""

import subprocess
import sys

import click
import pytest

from iotnotify import __version__
from tests.helpers import run_in_process


def test_version(cli):
    assert run_in_process(["--version"], cli.env).stdout.strip() == f"iotnotify, version {__version__}"


def test_main_returns_the_code_and_leaves_the_process_as_it_was(cli):
    """cli.main(argv) is the command without the process's part (launch.py's): it returns the exit
    code, and installs no signal handler or hook on the way."""
    import signal

    handlers = {name: signal.getsignal(name) for name in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)}
    hook = sys.unraisablehook
    assert run_in_process(["--version"], cli.env).returncode == 0
    refused = run_in_process(["send", "--qos", "5", "t", "m"], cli.env)
    assert refused.returncode == 2 and refused.stderr.startswith("iotnotify: error: Invalid value for '--qos'")
    assert {name: signal.getsignal(name) for name in handlers} == handlers
    assert sys.unraisablehook is hook


def test_python_dash_m_runs_the_same_command(cli):
    result = subprocess.run([sys.executable, "-m", "iotnotify", "--version"], capture_output=True, text=True,
                            env=cli.env)
    assert result.stdout.strip() == f"iotnotify, version {__version__}"


@pytest.mark.parametrize("command", [[], ["keys"], ["send"], ["subscribe"], ["local"], ["setup-role"]])
def test_every_command_has_help_with_examples(cli, command):
    result = run_in_process([*command, "--help"], cli.env)
    assert result.returncode == 0
    assert "Examples:" in result.stdout and "iotnotify" in result.stdout


def command_paths() -> list[list[str]]:
    """Every command, and each subcommand of a group (`retained list`, `agent start`...)."""
    from iotnotify import cli

    paths = []
    for name in sorted(cli.COMMANDS):
        command = cli.cli.get_command(None, name)  # type: ignore[arg-type]
        if isinstance(command, click.Group):
            paths += [[name, sub] for sub in command.list_commands(None)]  # type: ignore[arg-type]
        else:
            paths.append([name])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_group_option_works_after_every_command(cli, path):
    """--profile, --keys-timeout, --endpoint... after the command, as the aws CLI takes its global
    options (and as `iotnotify --help` says): a word of the group's that the command does not
    declare is the group's (click would refuse it: "No such option")."""
    after = ["--profile", "local", "--keys-timeout", "5", "--no-cache", "--endpoint", "http://127.0.0.1:9/iot/keys",
             "-p", "local", "--keys-timeout=7"]
    result = run_in_process([*path, *after, "--help"], cli.env)
    assert result.returncode == 0, result.stderr
    assert f"Usage: iotnotify {' '.join(path)}" in result.stdout


@pytest.mark.parametrize("argv, hoisted", [
    ("send --profile local t m", "--profile local send t m"),
    ("send t m -p local --keys-timeout=5", "-p local --keys-timeout=5 send t m"),
    ("send -m --profile t", "send -m --profile t"),  # -m's value, whatever it looks like
    ("send t m -V", "send t m -V"),  # eager: --version after a command is no version request
    ("agent -p local start --client-id -p", "-p local agent start --client-id -p"),  # start's own option
    ("retained list --profile local demo/#", "--profile local retained list demo/#"),
    ("respond demo/rpc -- cat --profile x", "respond demo/rpc -- cat --profile x"),  # CMD's, after --
    ("-p a send --profile b t m", "-p a --profile b send t m"),  # the later wins, as click's
])
def test_group_options_after_the_command_are_moved_before_it_and_nothing_else(argv, hoisted):
    from iotnotify.cli import cli
    from iotnotify.cli.hoist import hoisted as hoisting

    assert hoisting(cli, click.Context(cli), argv.split()) == hoisted.split()


@pytest.mark.parametrize("args, said", [
    (["send", "demo/x", "hi", "--profile"], "Option '--profile' requires an argument"),
    (["send", "demo/x", "hi", "-V"], "No such option '-V'"),  # not a version request
    (["send", "local", "--keys-timeout"], "Option '--keys-timeout' requires an argument"),  # not of `local`
])
def test_a_group_option_after_the_command_is_refused_as_click_would(cli, args, said):
    result = run_in_process(args, cli.env)
    assert result.returncode == 2 and said in result.stderr, result.stderr


BOTO_CHECK = """
import atexit, os, sys
def report():
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore'))
    sys.stderr.write('BOTO:' + ','.join(loaded) + '\\n')
    sys.stderr.flush()
atexit.register(report)
end = os._exit
def ending(code):  # send ends with os._exit, without atexit (cli/terminal.end_quickly)
    report()
    end(code)
os._exit = ending
sys.argv = ['iotnotify'] + sys.argv[1:]
from iotnotify.launch import main
main()
"""


@pytest.mark.parametrize("args, stdin", [
    (["keys"], None),
    (["send", "test/boto", "x"], None),
    (["send", "-l", "test/boto"], b"a\nb\n"),
    (["subscribe", "test/boto", "-C", "1", "-W", "1"], None),
])
def test_send_subscribe_and_keys_never_import_boto3(cli, args, stdin):
    result = subprocess.run([sys.executable, "-c", BOTO_CHECK, *args], input=stdin, capture_output=True,
                            env=cli.env, timeout=60)
    assert "BOTO:\n" in result.stderr.decode(), result.stderr.decode()
    assert "internal error" not in result.stderr.decode()


def test_every_command_is_in_the_lazy_table_and_only_its_module_is_imported():
    from iotnotify import cli

    for name in cli.COMMANDS:
        command = cli.cli.get_command(None, name)  # type: ignore[arg-type]
        assert isinstance(command, click.Command) and command.name == name
    probe = ("import sys; from iotnotify.cli import cli; cli.get_command(None, 'send'); "
             "print(sorted(m for m in sys.modules if m.startswith('iotnotify.cli.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ("['iotnotify.cli.client', 'iotnotify.cli.completers', 'iotnotify.cli.options', "
                           "'iotnotify.cli.terminal']")  # completers: the --profile completion callback, no imports
