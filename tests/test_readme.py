"""README.md and docs/ are the manual: the demo runs, the exit-code table matches the code, the
settings and conformance tables name what exists, an example prints what the command prints."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from iotnotify import errors
from tests.helpers import IOTNOTIFY, free_port, user_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_exit_code_table_matches_the_code():
    documented = {int(code) for code in re.findall(r"^\| (\d+) \| ", README, re.MULTILINE)}
    defined = {int(status) for status in errors.ExitStatus}
    assert documented == defined


def test_every_error_class_has_a_documented_exit_code():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.IotNotifyError)]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \| ", README, re.MULTILINE)}
    assert {c.exit_code for c in classes} <= documented


def test_the_settings_table_names_every_setting_with_its_variable_and_profile_key():
    """docs/settings.md's table against the code's (settings.ROWS): each visible setting has a line
    with its option, its IOTNOTIFY_* variable if it has one, and its profile key if a profile may
    hold it; and the table names no profile key the code does not take."""
    from iotnotify.settings import PROFILE_KEYS, ROWS, variable

    settings = (DOCS / "settings.md").read_text()
    table = settings[settings.index("# Settings"):]
    table = table[:table.index("\n\n", table.index("| setting |"))]
    lines = table.splitlines()
    for name, row in ROWS.items():
        line = next((line for line in lines if row.env and f"`{variable(name)}" in line), None) or next(
            (line for line in lines if f"`{name}`" in line), None)
        assert line is not None, name
        if not row.hidden:
            assert f"`{row.flag}" in line or f" {row.flag} " in line or row.on == "own", name
        if row.profile:
            assert re.search(rf"\| `{name}( = [^`]*)?` \|$", line), name
    keys = set(re.findall(r"\| `([a-z_]+)(?: = [^`]*)?` \|$", table, re.MULTILINE))
    assert keys <= set(PROFILE_KEYS), keys - set(PROFILE_KEYS)


@pytest.mark.mosquitto
def test_demo_script_shows_the_message_arriving(tmp_path):
    env = {**user_env(tmp_path), "IOTNOTIFY": shlex.join(IOTNOTIFY)}
    ports = ["--port", str(free_port()), "--keys-port", str(free_port()), "--mqtt-port", str(free_port()),
             "--ws-port", str(free_port())]  # not the defaults: a stack of the developer's own may hold them
    result = subprocess.run([str(ROOT / "scripts" / "demo"), *ports], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--- received:\ndemo/hello hello from iotnotify\n" in result.stdout
    assert result.stdout.rstrip().endswith("done")


@pytest.mark.mosquitto
def test_the_refusal_example_is_what_send_prints(tmp_path):
    """docs/commands/send.md: what the keys may not do is refused before anything is sent."""
    from tests.helpers import running_stack, user_of

    example = re.search(r"^\$ iotnotify (send other/x hi)\n(.*)$", (DOCS / "commands" / "send.md").read_text(),
                        re.MULTILINE)
    with running_stack(tmp_path) as stack:  # the default topics, as a user's first `iotnotify local`
        result = user_of(stack).run(*example.group(1).split())
    assert result.returncode == 10
    assert result.stderr.rstrip("\n") == example.group(2)


def test_the_conformance_table_names_a_test_for_each_rule_and_says_why_for_what_is_not_emulated():
    """docs/local-stack.md's "Local stack vs AWS IoT Core" table: every rule the stack emulates names the tests
    that show it, and each of them exists (a renamed or deleted test breaks this, not the table's
    truth); a rule not emulated says so and why, and names none."""
    page = (DOCS / "local-stack.md").read_text()
    table = page[page.index("| rule | AWS IoT Core | local stack | source | shown by |"):]
    rows = table[:table.index("\n\n")].splitlines()[2:]
    defined = {name for path in (ROOT / "tests").glob("test_*.py")
               for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)}
    assert len(rows) >= 30
    for row in rows:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 5, row
        rule, _, local, source, shown = cells
        assert source, rule
        if shown == "—":
            assert local.startswith("not emulated: ") and len(local) > len("not emulated: ") + 10, rule
            continue
        named = re.findall(r"`(test_\w+)`", shown)
        assert named and set(named) <= defined, (rule, set(named) - defined)
