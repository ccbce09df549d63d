"""The one seam to awscrt's internals (and to Linux's below them): the shortcuts.

Each module here does one thing awscrt's public API does not let us do, and each is a shortcut:
with it off, everything works as awscrt alone would, only slower where bench/README.md says
("Shortcuts", each measured on and off on rows that run under AWS IoT Core's rules).

| name      | what it reaches                                          | module     |
|-----------|----------------------------------------------------------|------------|
| `nodelay` | awscrt's sockets (TCP_NODELAY, which awscrt cannot set)  | nodelay.py |
| `warmup`  | `_awscrt`'s exported `s2n_disable_atexit` and `s2n_init` | warmup.py  |

Three more were measured and let go: `direct_publish` (`_awscrt.mqtt5_client_publish` called as
`Client.publish` calls it), `lean_receive` (awscrt's `_ClientCore` swapped for one without its
Python objects per message) and `threadstate` (the Python thread state kept on awscrt's threads).
Each halved a cost per message, which shows at 100,000 messages a second on a permissive broker
and not on a row that runs under AWS's rules, 100 messages a second per connection.

One policy for all: a shortcut is on only where the versions it reaches into are ones it was read
against (CHECKED), and what its module needs is there (warmup: the exported symbols); anywhere
else it is off and awscrt's public way is taken. `tests/test_crt.py` fails while any is off
on the versions `constraints.txt` installs, so an upgrade that turns one off is a known event
(`scripts/check --newest` runs the suite against the newest awscrt and awsiotsdk).
`IOTNOTIFY_NO_SHORTCUTS=1` turns them all off (or a comma-separated list of names, some);
`crt.report.report()` says which are on in this process.

Imported on the quick paths: nothing here may import more than `os` (warmup.py's reason).
"""

from __future__ import annotations

import os

SWITCH = "IOTNOTIFY_NO_SHORTCUTS"
NAMES = ("nodelay", "warmup")

CHECKED = {
    # name: (what decides, lowest and highest (major, minor) read)
    "nodelay": ("awscrt", (0, 20), (0, 38)),  # io.SocketOptions has no TCP_NODELAY in any of them
    "warmup": ("awscrt", (0, 20), (0, 38)),  # aws-c-io >= 0.13.1 leaves an initialized s2n alone
}
"""The versions each shortcut was read against (the sources named in its module)."""


def switched_off(name: str) -> bool:
    """Whether IOTNOTIFY_NO_SHORTCUTS turns `name` off: "1" (or "all") all, else the names listed
    (separated by commas or spaces; `-` as `_`); "0" or nothing none."""
    parts = set(os.environ.get(SWITCH, "").lower().replace("-", "_").replace(",", " ").split())
    return bool(parts & {"1", "all", "true", "yes"}) or name in parts


def version_tuple(version: str) -> tuple[int, int] | None:
    """(major, minor) of a version string such as '0.36.1', None if it has none."""
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def checked(name: str, version: str) -> bool:
    """Whether `version` (of what CHECKED says decides) is among those `name` was read against."""
    _what, lowest, highest = CHECKED[name]
    found = version_tuple(version)
    return found is not None and lowest <= found <= highest


def decide(name: str, version: str) -> str:
    """Why `name` is off ("" if on): switched off, or a version not read."""
    if switched_off(name):
        return f"{SWITCH} is set"
    if not checked(name, version):
        what, lowest, highest = CHECKED[name]
        return f"{what} {version} is not among those read ({lowest[0]}.{lowest[1]} to {highest[0]}.{highest[1]})"
    return ""
