"""SIGINT and SIGTERM both stop a command cleanly (KeyboardInterrupt), even in a background job:
for the CLI's main and for a send through the agent (agent/quick.py), which does not load it."""

from __future__ import annotations

import signal


def interrupt_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt in the main thread."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
