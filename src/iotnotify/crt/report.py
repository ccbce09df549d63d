"""Which shortcuts into awscrt are on in this process, and why each that is not is off."""

from __future__ import annotations

from iotnotify.crt import NAMES, nodelay, publish, receive, threadstate, warmup


def report() -> dict[str, str]:
    """Each shortcut's state: "on", or "off: why" (this imports awscrt)."""
    off = {"direct_publish": publish.OFF, "lean_receive": receive.OFF, "threadstate": threadstate.OFF,
           "nodelay": nodelay.off(), "warmup": warmup.off()}
    return {name: f"off: {off[name]}" if off[name] else "on" for name in NAMES}
