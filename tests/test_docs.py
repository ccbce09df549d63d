"""docs/ is a site that builds without a warning (`mkdocs build --strict`, scripts/check runs it too),
and each command's options in it are what its --help says (scripts/docs-options writes them)."""

import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def docs_options():  # the script, as a module
    loader = importlib.machinery.SourceFileLoader("docs_options", str(ROOT / "scripts" / "docs-options"))
    spec = importlib.util.spec_from_loader("docs_options", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_every_commands_options_in_the_docs_are_its_help():
    """A new option, a changed help text or default, a removed flag: the page is stale until
    scripts/docs-options runs again."""
    script = docs_options()
    for page, blocks in script.expected().items():
        text = page.read_text()
        found = {m.group("path"): m.group(0) for m in script.BLOCK.finditer(text)}
        assert set(found) == set(blocks), (page, set(blocks) ^ set(found))
        for path, block in blocks.items():
            assert found[path] == block, f"{page}: `iotnotify {path}` is not in step: run scripts/docs-options"


def test_each_options_table_lists_what_help_prints(tmp_path):
    """The tables against `iotnotify COMMAND --help` itself (not the script's reading of click):
    each row's option names are a line's start in the help, and each option of the help has its row."""
    from tests.helpers import run_in_process, user_env

    script = docs_options()
    for path, command in script.commands():
        help_text = run_in_process([*path.split(), "--help"], {**user_env(tmp_path), "COLUMNS": "200"}).stdout
        options = help_text.split("Options:")[1].split("\n\n")[0]
        helped = re.findall(r"^  (-\S.*?)(?:  |$)", options, re.MULTILINE)
        documented = re.findall(r"^\| `(.+?)` \| ", script.block(path, command), re.MULTILINE)
        assert helped and documented == [name.replace("|", "\\|") for name in helped], path


def test_every_command_and_option_has_its_place():
    script = docs_options()
    paths = {path or "iotnotify" for path, _ in script.commands()}
    documented = {m.group("path") for page in (ROOT / "docs").rglob("*.md")
                  for m in script.BLOCK.finditer(page.read_text())}
    assert paths == documented
    send = (ROOT / "docs" / "commands" / "send.md").read_text()
    assert re.search(r"^\| `-q, --qos INTEGER RANGE` \| Quality of service", send, re.MULTILINE)


def test_the_site_builds_strict(tmp_path):
    done = subprocess.run([str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    exit_codes = (tmp_path / "site" / "exit-codes" / "index.html").read_text()
    assert "<td>143</td>" in exit_codes  # README's table, included (one source)
