"""What `sam deploy` needs, written from the installed package (`iotnotify deploy-template DIR`):
template.yaml, and function/ with only the files the keys function runs (the handler's modules and
the browser page it serves), not the whole package (the CLI, the local stack, 95 files), so a pip
user deploys without a clone, and the function's code is 19 files."""

from __future__ import annotations

import shutil
from pathlib import Path

from iotnotify.errors import UsageError

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
FUNCTION = "function"  # the template's CodeUri, beside it
OURS = {"template.yaml", FUNCTION, ".aws-sam", "samconfig.toml"}  # what a folder may hold already: ours, SAM's

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
    """Write template.yaml and function/ into `folder` (made if need be; what was there of ours is
    replaced); return what was written."""
    code = folder / FUNCTION
    if folder.exists():
        strangers = sorted(p.name for p in folder.iterdir() if p.name not in OURS)
        if strangers or (code.exists() and not (code / "iotnotify" / "server" / "handler.py").exists()):
            raise UsageError(f"{folder} holds other files ({', '.join(strangers) or FUNCTION}): "
                             "give an empty or new folder, or one this command wrote")
    if code.exists():
        shutil.rmtree(code)
    written = [folder / TEMPLATE.name]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE, written[0])
    for relative in function_files():
        target = code / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE.parent / relative, target)
        written.append(target)
    return written
