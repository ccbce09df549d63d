"""The sdist and the wheel, built as a release would build them: `twine check --strict` passes; the
wheel alone, in a fresh virtual environment, runs `iotnotify local` and sends and receives through
it; the unpacked sdist runs tests of its own; the long description has no link a package index
could not resolve."""

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.helpers import free_port, user_env, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist, and the wheel built from it (python -m build's way), with the tools installed here."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_twine_check_passes(dists):
    done = subprocess.run([str(BIN / "twine"), "check", "--strict", str(dists["sdist"]), str(dists["wheel"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_says_its_licence_and_needs_no_boto3(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = next(wheel.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)
    assert [r for r in requires if r.startswith("boto3")] == ['boto3>=1.34; extra == "aws"']
    assert {"iotnotify/deploy/template.yaml", "iotnotify/web/static/mqtt.min.js", "iotnotify/web/index.html"} <= names


def test_the_long_description_links_nothing_relative():
    """On a package index a relative link or image (docs/page.png) is broken: absolute URLs or none."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]*)\)", readme) + re.findall(r'src="([^"]*)"', readme)
    assert targets, "no link at all: the check would prove nothing"
    assert all(t.startswith("https://") for t in targets), targets
    assert len(readme.splitlines()) <= 300


def declared_closure(requirements: list[str]) -> set[str]:
    """The distributions `requirements` need (those without an extra's marker), and theirs, as
    installed here."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    found: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = distribution(requirement.name).metadata["Name"]
        if name.lower() not in found:
            found.add(name.lower())
            todo += [Requirement(r) for r in distribution(name).requires or []]
    return found


def dependencies_folder(folder: Path, wheel: Path) -> Path:
    """A folder holding links to the installed files of the wheel's declared dependencies alone
    (their closure: no boto3, no test tools), for a fresh venv that may not use an index."""
    from importlib.metadata import distribution

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    folder.mkdir()
    for name in declared_closure(re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)):
        dist = distribution(name)
        for top in {Path(str(f)).parts[0] for f in dist.files or ()} - {"..", "__pycache__"}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


@pytest.mark.mosquitto
def test_a_fresh_venv_with_only_the_wheel_sends_through_iotnotify_local(dists, tmp_path):
    """The wheel installed alone (no source tree anywhere on the path): `iotnotify local` from it,
    and a send and a subscribe through it. Its dependencies are its declared ones only (links to
    those installed here, no index at test time): a missing dependency, or boto3 imported on
    these paths, fails it."""
    venv = tmp_path / "venv"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a source tree there would pass for installed
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120, env=clean)
    site = next(venv.glob("lib/python*/site-packages"))
    installed = subprocess.run([str(BIN / "pip"), "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                                "--no-index", str(dists["wheel"])], timeout=300, capture_output=True, text=True,
                               env=clean)
    assert installed.returncode == 0 and (site / "iotnotify" / "__init__.py").exists(), installed.stdout
    deps = dependencies_folder(tmp_path / "deps", dists["wheel"])
    assert not (deps / "boto3").exists() and (deps / "click").exists() and (deps / "awscrt").exists()
    (site / "dependencies.pth").write_text(f"{deps}\n")  # after the venv's own
    env = {**user_env(tmp_path), "PATH": f"{venv / 'bin'}:/usr/bin:/bin:/usr/sbin"}
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import iotnotify; print(iotnotify.__file__)"],
                           capture_output=True, text=True, env=env, check=True).stdout
    assert where.startswith(str(site)), where
    iotnotify = str(venv / "bin" / "iotnotify")
    ports = [str(free_port()) for _ in range(4)]
    stack = subprocess.Popen([iotnotify, "local", "--port", ports[0], "--keys-port", ports[1], "--mqtt-port",
                              ports[2], "--ws-port", ports[3]], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        config = tmp_path / "xdg_config_home" / "iotnotify" / "config.toml"
        wait_for(lambda: config.exists() or stack.poll() is not None, 30, "iotnotify local")
        assert stack.poll() is None, stack.communicate()[1]
        ready = tmp_path / "ready"
        sub = subprocess.Popen([iotnotify, "--profile", "local", "subscribe", "demo/wheel", "-C", "1", "-W", "30",
                                "--ready-file", str(ready)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: ready.exists() or sub.poll() is not None, 30, "the wheel's subscriber")
        sent = subprocess.run([iotnotify, "send", "--profile", "local", "demo/wheel", "from the wheel"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        out, err = sub.communicate(timeout=30)
        assert (sub.returncode, out) == (0, b"from the wheel\n"), err
    finally:
        stack.terminate()
        stack.communicate(timeout=30)


@pytest.mark.mosquitto
def test_the_unpacked_sdist_runs_its_own_tests(dists, tmp_path):
    """The sdist holds the tests and what they need (docs, scripts, the template...): a part of the
    suite runs from it, on its own source (PYTHONPATH), not this checkout's."""
    with tarfile.open(dists["sdist"]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.glob("iotnotify-*")
    env = {**user_env(tmp_path), "PYTHONPATH": str(unpacked / "src")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
                           "tests/test_docs.py", "tests/test_deploy_template.py", "tests/test_light_install.py",
                           "tests/test_readme.py::test_exit_code_table_matches_the_code"],
                          cwd=unpacked, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b(\d+) passed", done.stdout) and " failed" not in done.stdout
    probe = subprocess.run([sys.executable, "-c", "import iotnotify; print(iotnotify.__file__)"], env=env,
                           capture_output=True, text=True, check=True, cwd=unpacked)
    assert probe.stdout.startswith(str(unpacked)), probe.stdout
