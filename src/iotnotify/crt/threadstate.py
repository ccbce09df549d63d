"""Python callbacks from awscrt's I/O threads without a new Python thread state for each one (`threadstate`).

awscrt calls into Python (a publish acknowledged, a message received) from its own event-loop
threads, which Python does not know. Each call takes `PyGILState_Ensure`, and as the thread holds
no Python thread state, CPython creates one, with a fresh 16 KiB frame stack (an `mmap`), and
destroys it at `PyGILState_Release` (a `munmap`): three system calls and an allocation per callback
(bench/README.md, "Shortcuts").

`keep()`, called from such a callback, takes one more `PyGILState_Ensure` that is never released,
so the thread keeps its state from then on. CPython frees it at interpreter exit as it frees every
thread state; awscrt does not call into Python once the interpreter is finalizing.
"""

from __future__ import annotations

import itertools
import sys
import threading

from iotnotify.crt import decide

WARM_UP = 64
"""Callbacks before the state is kept: a single `send` should not pay for importing ctypes."""

OFF = decide("threadstate", "{}.{}".format(*sys.version_info[:2]))
"""Why keep() does nothing ("" when it keeps the state)."""
ACTIVE = not OFF

_calls = itertools.count(1)  # next() is atomic under the GIL: callbacks may come from several threads
_kept = threading.local()  # lives in the thread state, so it is empty until the state is kept


def keep() -> None:
    """Keep the calling (foreign) thread's Python thread state after its first WARM_UP callbacks."""
    if not ACTIVE or getattr(_kept, "done", False):
        return
    if next(_calls) < WARM_UP:
        return
    import ctypes

    ctypes.pythonapi.PyGILState_Ensure()
    _kept.done = True
