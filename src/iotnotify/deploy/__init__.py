"""What `sam deploy` needs, written from the installed package (`iotnotify deploy-template DIR`):
template.yaml, and function/ with only the files the keys function runs (the handler's modules and
the browser page it serves), not the whole package (the CLI, the local stack, 95 files), so a pip
user deploys without a clone, and the function's code is 20 files."""

from __future__ import annotations

import shutil
from pathlib import Path

from iotnotify.errors import UsageError

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
FUNCTION = "function"  # the template's CodeUri, beside it
OURS = {"template.yaml", FUNCTION, ".aws-sam", "samconfig.toml"}  # what a folder may hold already: ours, SAM's
MARK = "iotnotify keys endpoint: GET /iot/keys"  # in our template's Description: a template.yaml we wrote

FUNCTION_FILES = (
    "__init__.py", "booleans.py", "errors.py", "iam.py", "limits.py", "shown.py", "times.py", "topics.py",
    "server/__init__.py", "server/config.py", "server/handler.py", "server/issuers.py", "server/policy.py",
    "web/__init__.py", "web/index.html", "web/static/*",
)
"""What server/handler.py imports, and the page it serves (package paths; a test runs the handler
with these alone)."""


def function_files() -> list[Path]:
    """The keys function's files in the installed package, as paths relative to its parent."""
    found: list[Path] = []
    for pattern in FUNCTION_FILES:
        found += sorted(p for p in PACKAGE.glob(pattern) if p.is_file())
    return [p.relative_to(PACKAGE.parent) for p in found]


def write(folder: Path) -> list[Path]:
    """Write template.yaml and function/iotnotify/ into `folder` (made if need be), replacing only
    what an earlier run wrote there: a folder holding anything else (its own template.yaml, other
    files) is refused, and function/'s other entries (a requirements.txt of yours) are left as they
    are. Return what was written."""
    _check(folder)
    package = folder / FUNCTION / PACKAGE.name
    if package.exists():
        shutil.rmtree(package)  # ours: written by an earlier run (a module since removed goes too)
    written = [folder / TEMPLATE.name]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE, written[0])
    for relative in function_files():
        target = folder / FUNCTION / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE.parent / relative, target)
        written.append(target)
    return written


def _check(folder: Path) -> None:
    """Refuse a folder that holds what this command did not write (or a file in its place)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    strangers = sorted(p.name for p in folder.iterdir() if p.name not in OURS)
    template = folder / TEMPLATE.name
    if template.exists() and MARK not in template.read_text(errors="replace")[:1000]:
        strangers.insert(0, f"{TEMPLATE.name}, not this command's")
    package = folder / FUNCTION / PACKAGE.name
    if package.exists() and not (package / "server" / "handler.py").is_file():
        strangers.append(f"{FUNCTION}/{PACKAGE.name}, not this command's")
    if strangers:
        raise UsageError(f"{folder} holds other files ({', '.join(strangers)}): give an empty or new folder, "
                         "or one this command wrote")


def stale_build(folder: Path) -> bool:
    """Whether `sam build` left a build in `folder` that `sam deploy` would use before what was just
    written (it deploys .aws-sam/build/template.yaml when there is one)."""
    return (folder / ".aws-sam" / "build" / TEMPLATE.name).exists()
