"""Awscrt's TLS library initialized on another core while Python imports the rest of a command (`warmup`).

Importing awscrt's native module `_awscrt` initializes s2n-tls (on Linux), and with it AWS-LC's
random generator, seeded from CPU jitter entropy (`tree_jitter_initialize_once` in `perf`), and
loads the system's CA store: more than half of the import, all of it holding the GIL
(bench/README.md, "Cold send"). `_awscrt` exports `s2n_disable_atexit` and `s2n_init`: `start()` calls them
through ctypes, which lets go of the GIL, in a thread, so the main thread goes on importing
settings, keys and the CLI meanwhile. Whatever imports `_awscrt` first waits for that thread (a
finder at the head of sys.meta_path), so no import can overlap the initialization; a command that
ends without importing awscrt waits for it at exit (atexit), not to end under its feet.

What aws-c-io then does (s2n_tls_channel_handler.c, `s_tls_init_static_state`, the same from its
v0.13.1 of 2022 to the v0.27 that awscrt 0.36-0.38 bundle): its own `s2n_disable_atexit()` fails,
it logs "static: s2n is already initialized" and skips `s2n_mem_set_callbacks` and `s2n_init`
(it still finds the default CA paths), and at exit it skips `s2n_cleanup_final`. So s2n keeps the
memory callbacks it had when we initialized it: its defaults, which `mlock` every allocation
(page-aligned) unless the variable S2N_DONT_MLOCK is set, where aws-c-io's own would have used
plain malloc. With the defaults, a process that may not lock memory (RLIMIT_MEMLOCK 0 without
CAP_IPC_LOCK, as in some containers) had s2n_init fail half-done and awscrt's import abort the
process (`s2n_mem_set_callbacks() failed`, exit 134). `start()` therefore sets S2N_DONT_MLOCK
for the initialization (as aws-c-io itself did before v0.14.8), and `wait()` takes it away again:
at awscrt's import, or before this process starts another (agent/spawn.py).

Only where it can pay: Linux, more than one CPU to run on, awscrt not imported yet, an awscrt
crt.CHECKED names (its dist-info beside `_awscrt`) that exports both functions.
"""

from __future__ import annotations

import os
import sys

from iotnotify.crt import checked, switched_off

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

_running: list[Any] = []  # the lock held while the warm-up runs: one warm-up per process
_outcome: list[str] = []  # what it did: "initialized", "already" (s2n was), or why not
_set_dont_mlock: list[bool] = []  # whether start() set S2N_DONT_MLOCK (wait() takes it away)
DONT_MLOCK = "S2N_DONT_MLOCK"


def start() -> bool:
    """Initialize s2n-tls in a thread, if it can pay here; False if not started (awscrt then does it).
    ctypes is imported here, not in the thread: the waiting finder holds the import lock."""
    if _running or "_awscrt" in sys.modules or _unfit():
        return False
    import _thread  # not threading: more to import, for nothing here
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

    if DONT_MLOCK not in os.environ:  # set here: the environment is not to be changed while others read it
        os.environ[DONT_MLOCK] = "1"
        _set_dont_mlock.append(True)
    try:
        _thread.start_new_thread(warm_up, ())
    except RuntimeError:  # no thread to be had: awscrt initializes s2n itself, as without a warm-up
        running.release()
        _outcome.append("no thread")
        wait()
        return False
    sys.meta_path.insert(0, _WaitFirst())
    atexit.register(_join)  # a command that never imports awscrt: not ended under the thread's feet
    return True


def _join() -> None:
    for running in _running:
        with running:
            pass


def wait() -> str:
    """Wait for the warm-up, if one started; what it did ("" if none). Called before awscrt's import
    and before starting another process: S2N_DONT_MLOCK is this process's alone."""
    _join()
    if _set_dont_mlock:
        _set_dont_mlock.clear()
        os.environ.pop(DONT_MLOCK, None)
    return _outcome[0] if _outcome else ""


def _unfit() -> str:
    """Why no warm-up can pay in this process, before looking at awscrt ("" if it may)."""
    if switched_off("warmup"):
        return "IOTNOTIFY_NO_SHORTCUTS is set"
    if not sys.platform.startswith("linux"):
        return f"not on Linux ({sys.platform})"
    if len(os.sched_getaffinity(0)) < 2:
        return "one CPU"
    return ""


def off() -> str:
    """Why a command of this process would not warm up ("" if it would), awscrt's side included."""
    import ctypes
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("_awscrt")
    if unfit := _unfit() or _unchecked(spec):
        return unfit
    try:
        library = ctypes.CDLL(spec.origin if spec is not None else None)
        library.s2n_disable_atexit, library.s2n_init  # noqa: B018 - each raises if not exported
    except (OSError, AttributeError) as e:
        return f"not available: {e}"
    return ""


def _unchecked(spec: ModuleSpec | None) -> str:
    """Why the awscrt beside `spec` is not one crt.CHECKED names ("" if it is); no import (see start)."""
    if spec is None or not spec.origin:
        return "no _awscrt"
    try:  # os, not pathlib or importlib.metadata: the quick paths
        names = os.listdir(os.path.dirname(spec.origin))  # noqa: PTH120, PTH208
    except OSError:
        names = []
    versions = [name[len("awscrt-"):-len(".dist-info")] for name in names
                if name.startswith("awscrt-") and name.endswith(".dist-info")]
    if len(versions) != 1:
        return "no awscrt version found beside _awscrt" if not versions else f"awscrt {', '.join(versions)} beside _awscrt"
    if not checked("warmup", versions[0]):
        return f"awscrt {versions[0]} is not among those read"
    return ""


def _initialize(load: Any, spec: ModuleSpec | None) -> str:
    """Call s2n_init in the library `spec` finds, as aws-c-io would (no atexit handler); what happened."""
    if spec is None or (unchecked := _unchecked(spec)):
        return "no _awscrt" if spec is None else unchecked
    try:
        library = load(spec.origin)  # the handle the import gets later: the same file is loaded once
        if library.s2n_disable_atexit() != 0:  # -1: s2n is initialized already
            return "already"
        return "initialized" if library.s2n_init() == 0 else "s2n_init failed"
    except (OSError, AttributeError) as e:  # no such library or function: awscrt does it all
        return f"not available: {e}"


class _WaitFirst:
    """A finder that finds nothing: the first import of `_awscrt` waits for the warm-up first. It
    stays in sys.meta_path (removing it while importlib loops over the list would skip the next finder)."""

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "_awscrt":
            wait()
        return None
