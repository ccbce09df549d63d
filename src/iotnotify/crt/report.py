"""Which shortcuts into awscrt are on in this process, and why each that is not is off."""

from __future__ import annotations

from iotnotify.crt import NAMES, nodelay, warmup


def report() -> dict[str, str]:
    """Each shortcut's state: "on", or "off: why" (this imports awscrt)."""
    off = {"nodelay": nodelay.off(), "warmup": warmup.off()}
    return {name: f"off: {off[name]}" if off[name] else "on" for name in NAMES}
