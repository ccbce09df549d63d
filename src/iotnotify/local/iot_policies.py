"""The AWS IoT policies attached to the local stack's Cognito identities.

AWS IoT authorizes an authenticated Cognito identity (one that signed in) by its identity pool
role and, as well, by the AWS IoT policies attached to the identity (Developer Guide, "Amazon
Cognito identities": "in addition to the IAM policy attached to the identity pool, you must attach
an AWS IoT policy to an Amazon Cognito Identity"; without one it "fails authorization").
`iotnotify setup-cognito --local` attaches one here, in a file of the stack's state folder (mode
0600), and the stack reads it at each connection of such an identity. Unauthenticated identities
need none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILE = "iot-policies.json"  # {"policies": {name: document}, "targets": {identity: [name, ...]}}


def _read(path: Path) -> dict[str, Any]:
    """The file's content; ValueError if it is not what attach() writes; files.Unsafe (an OSError)
    if it or its folder is not the user's alone."""
    from iotnotify.files import read_private

    try:
        data = json.loads(read_private(path))
    except FileNotFoundError:
        return {"policies": {}, "targets": {}}
    except ValueError:
        raise ValueError(f"{path}: not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("policies"), dict) \
            or not isinstance(data.get("targets"), dict) \
            or not all(isinstance(names, list) for names in data["targets"].values()):
        raise ValueError(f"{path}: not a file of attached policies")
    return data


def attach(state_dir: Path, name: str, policy: dict[str, Any], identities: list[str],
           dry_run: bool = False) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """Create or update policy `name` and attach it to each identity: (the policy before, the
    identities it was attached to now, those that had it)."""
    from iotnotify.files import write_private

    path = state_dir / FILE
    data = _read(path)
    before = data["policies"].get(name)
    data["policies"][name] = policy
    attached: list[str] = []
    already: list[str] = []
    for identity in identities:
        names = data["targets"].setdefault(identity, [])
        (already if name in names else attached).append(identity)
        if name not in names:
            names.append(name)
    if not dry_run:
        write_private(path, json.dumps(data, indent=1).encode(), strict=True)
    return before, attached, already


def combined(policies: list[dict[str, Any]]) -> dict[str, Any]:
    """The policies attached to one principal as the one policy AWS evaluates them as: any of their
    Allows allows, any Deny denies (not an intersection, as with a session policy)."""
    statements: list[Any] = []
    for policy in policies:
        found = policy.get("Statement", [])
        statements += found if isinstance(found, list) else [found]
    return {"Version": "2012-10-17", "Statement": statements}


class Attached:
    """The policies attached to each identity, read again whenever the file changed."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE
        self._seen: tuple[int, int, int] | None = None
        self._data: dict[str, Any] = {"policies": {}, "targets": {}}

    def of(self, identity: str) -> list[dict[str, Any]]:
        """The documents of the policies attached to `identity` (none if the file is unreadable)."""
        try:
            stat = self.path.stat()
        except OSError:
            return []
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a new file (os.replace) is another inode
        if self._seen != seen:
            try:
                self._data = _read(self.path)
            except (OSError, ValueError):
                return []
            self._seen = seen
        policies = self._data["policies"]
        names = self._data["targets"].get(identity, [])
        return [policies[n] for n in names if isinstance(n, str) and isinstance(policies.get(n), dict)]
