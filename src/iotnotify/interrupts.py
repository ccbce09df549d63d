"""SIGINT and SIGTERM both stop a command cleanly (KeyboardInterrupt), even in a background job:
for the CLI's main and for a send through the agent (agent/quick.py), which does not load it."""

from __future__ import annotations

# `signal` is `_signal` wrapped in enums: importing it (and enum, functools, collections) was a
# quarter of a send through the agent's imports (`python -X importtime`). The
# functions here take and give plain numbers, which is all this needs. Type checkers have no
# stub for it: they read signal's, the same functions.
TYPE_CHECKING = False  # not typing's: a send through the agent imports neither typing nor enum
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal


def interrupt_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt in the main thread."""
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    _signal.signal(_signal.SIGINT, interrupt)
    _signal.signal(_signal.SIGTERM, interrupt)
