"""Awscrt's TLS library initialized on another core while Python imports the rest of a command.

Importing awscrt's native module `_awscrt` initializes s2n-tls (on Linux), and with it AWS-LC's
random generator, seeded from CPU jitter entropy (`tree_jitter_initialize_once` in `perf`), and
loads the system's CA store: 50-60 ms of one core, more than half of the import, all of it
holding the GIL. aws-c-io (since 0.13.1, 2022, so every awscrt this project accepts) leaves s2n
alone when it finds it already initialized (its s2n_tls_channel_handler.c), and `_awscrt` exports
`s2n_disable_atexit` and `s2n_init`: `start()` calls them through ctypes, which lets go of the GIL,
in a thread, so the main thread goes on importing settings, keys and the CLI meanwhile. Whatever
imports `_awscrt` first waits for that thread (a finder at the head of sys.meta_path), so no
import can overlap the initialization; the thread is not a daemon, so a command that ends without
importing awscrt waits for it too. Only where it can pay: Linux with `_awscrt` exporting both
functions, more than one CPU to run on, awscrt not imported yet (bench/README.md, "Cold send").
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs the quick paths 7 ms
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

_running: list[Any] = []  # the lock held while the warm-up runs: one warm-up per process
_outcome: list[str] = []  # what it did: "initialized", "already" (s2n was), or why not


def start() -> bool:
    """Initialize s2n-tls in a thread, if it can pay here; False if not started (awscrt then does it).
    ctypes is imported here, not in the thread: the waiting finder holds the import lock."""
    if _running or "_awscrt" in sys.modules or not sys.platform.startswith("linux") \
            or len(os.sched_getaffinity(0)) < 2:
        return False
    import _thread  # threading costs 5 ms more
    import atexit
    import ctypes
    from importlib.machinery import PathFinder

    running = _thread.allocate_lock()
    running.acquire()
    _running.append(running)

    def warm_up() -> None:
        try:
            _outcome.append(_initialize(ctypes.CDLL, PathFinder.find_spec("_awscrt")))
        except Exception as e:  # awscrt's import initializes s2n then, as without a warm-up
            _outcome.append(f"failed: {e!r}")
        finally:
            running.release()

    sys.meta_path.insert(0, _WaitFirst())
    atexit.register(wait)  # a command that never imports awscrt: not ended under the thread's feet
    _thread.start_new_thread(warm_up, ())
    return True


def wait() -> str:
    """Wait for the warm-up, if one started; what it did ("" if none)."""
    for running in _running:
        with running:
            pass
    return _outcome[0] if _outcome else ""


def _initialize(load: Any, spec: ModuleSpec | None) -> str:
    """Call s2n_init in the library `spec` finds, as aws-c-io would (no atexit handler); what happened."""
    if spec is None or not spec.origin:
        return "no _awscrt"
    try:
        library = load(spec.origin)  # the handle the import gets later: the same file is loaded once
        if library.s2n_disable_atexit() != 0:  # -1: s2n is initialized already
            return "already"
        return "initialized" if library.s2n_init() == 0 else "s2n_init failed"
    except (OSError, AttributeError) as e:  # no such library or function: awscrt does it all
        return f"not available: {e}"


class _WaitFirst:
    """A finder that finds nothing: the first import of `_awscrt` waits for the warm-up first."""

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "_awscrt":
            wait()
            sys.meta_path.remove(self)
        return None
