"""`send`'s side of the agent: hand the messages to a running agent and keep each payload until the
agent says the broker acknowledged it, so that nothing the agent did not confirm is lost (--failed
gets it) even if the agent dies. No awscrt here: this is what makes a send through an agent quick.

It imports only what a plain send needs (agent/__init__.py says why): `_socket`, the C module
`socket` wraps (not socket.py, whose enums and selectors are dear), no json (wire.py), and threading only
for a stream (-l), whose acknowledgements are read while it writes; a whole message is written,
then its answers read, in one thread. Our errors are imported when one is raised.
"""

from __future__ import annotations

import _socket
import os

from iotnotify.agent import owned
from iotnotify.agent.wire import (
    ACKED,
    END,
    HEADER,
    READY,
    REJECTED,
    STATUS,
    STOP,
    VERDICT,
    Reader,
    frame,
    header,
    message_frame,
    value,
    value_frame,
)

TYPE_CHECKING = False  # not typing: too dear for the quick paths (bench/README.md, "Cold send")
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from iotnotify.errors import IotNotifyError
    from iotnotify.outgoing import Outgoing

WINDOW = 1000  # messages handed to the agent and not yet acknowledged, at most (as send.WINDOW)
GRACE = 30.0  # s past --timeout to wait for the agent's verdict before taking it for dead
HANDSHAKE = 60.0  # s for the agent to check a send (it may have to fetch new keys) before sending without it
ASK_TIMEOUT = 10.0  # s for the agent to answer `agent status` or `agent stop`


class Unavailable(Exception):
    """No agent took the send (none running, a stale socket, other settings): nothing was handed
    over, so the caller sends by itself."""


def connect(path: str) -> _socket.socket:
    """A connection to the agent at `path`; Unavailable if none listens there (a stale socket of this
    user's is removed)."""
    if not owned(path):
        raise Unavailable(f"no agent socket at {path}")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except ConnectionRefusedError:
        sock.close()
        try:
            os.unlink(path)  # its agent died without removing it
        except OSError:
            pass
        raise Unavailable(f"stale agent socket {path} removed") from None
    except OSError as e:
        sock.close()
        raise Unavailable(f"agent socket {path}: {e.strerror or e}") from None
    return sock


def ask(path: str, kind: bytes) -> dict[str, Any]:
    """The agent's answer to STATUS or STOP; Unavailable if there is no agent."""
    sock = connect(path)
    sock.settimeout(ASK_TIMEOUT)  # an agent that hangs is an agent that does not answer
    try:
        sock.sendall(frame(kind))
        got = Reader(sock).next()
    except OSError:
        got = None
    finally:
        sock.close()
    if got is None or got[0] != VERDICT:
        raise Unavailable(f"the agent at {path} did not answer")
    return value(got[1])


def status(path: str) -> dict[str, Any]:
    """What the agent at `path` says of itself."""
    return ask(path, STATUS)


def stop(path: str) -> int:
    """Ask the agent at `path` to stop; its pid."""
    return int(ask(path, STOP)["stopping"])


class _Alone:
    """Condition's part that _Session uses, for a session read in the thread that writes."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None

    def notify_all(self) -> None:
        return None

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None = None) -> bool:
        return predicate()


class _Session:
    """One send through the agent: what was handed over and not yet acknowledged, and how it ended."""

    def __init__(self, sock: _socket.socket, on_rejected: Callable[[int, str], None], threaded: bool) -> None:
        self.sock, self.on_rejected = sock, on_rejected
        if threaded:
            import threading

            self.cond: Any = threading.Condition()
        else:
            self.cond = _Alone()
        self.pending: dict[int, bytes] = {}
        self.sent = 0
        self.ready = False
        self.waiting_for_room = False
        self.verdict: dict[str, Any] | None = None
        self.gone = False
        self.unread = False  # the send ended before the end of its input (left unread, as send does)

    def listen(self) -> None:
        """Read the agent's frames until it closes (it does after its VERDICT)."""
        reader = Reader(self.sock)
        try:
            while (got := reader.next()) is not None:
                kind, body = got
                if kind == ACKED:
                    self._acked(body)
                elif kind == REJECTED:
                    info = value(body)
                    self.on_rejected(int(info["position"]), str(info["message"]))
                elif kind in (READY, VERDICT):
                    with self.cond:
                        if kind == READY:
                            self.ready = True
                        else:
                            self.verdict = value(body)
                        self.cond.notify_all()
        except (OSError, ValueError):
            pass
        with self.cond:
            self.gone = True
            self.cond.notify_all()

    def _acked(self, body: bytes) -> None:
        with self.cond:
            for start in range(0, len(body), 4):
                self.pending.pop(int.from_bytes(body[start:start + 4], "big"), None)
            if not self.pending or (self.waiting_for_room and len(self.pending) <= WINDOW // 2):
                self.cond.notify_all()

    @property
    def over(self) -> bool:
        return self.verdict is not None or self.gone

    def wait(self, until: Callable[[], bool], timeout: float | None = None) -> bool:
        with self.cond:
            return bool(self.cond.wait_for(until, timeout))

    def hand(self, payload: bytes) -> bool:
        """Hand one message over (after waiting for room); False once the agent ended the send."""
        if len(self.pending) >= WINDOW:
            with self.cond:
                self.waiting_for_room = True
                self.cond.wait_for(lambda: len(self.pending) <= WINDOW // 2 or self.over)
                self.waiting_for_room = False
        if self.over:
            return False
        with self.cond:
            self.sent += 1
            self.pending[self.sent] = payload
        try:
            self.sock.sendall(message_frame(payload))
        except OSError:
            return False
        return True


def send(path: str, identity: str, outgoing: Outgoing, on_rejected: Callable[[int, str], None]) -> None:
    """Send as `send.send` does, through the agent at `path`: return once the broker acknowledged
    every message, else raise the error `send` would have (and write what was not acknowledged
    to the `failed` file). Unavailable, before anything was handed over, if no agent takes it."""
    sock = connect(path)
    whole = outgoing.whole
    session = _Session(sock, on_rejected, threaded=not whole)
    failed_file, timeout = outgoing.failed, outgoing.timeout
    try:
        data = value_frame(HEADER, header(identity, outgoing))
        if whole:
            session.pending = dict(enumerate(outgoing.payloads, 1))
            session.sent = len(session.pending)
            data += b"".join(message_frame(payload) for payload in session.pending.values()) + frame(END)
            sock.sendall(data)
            sock.settimeout(timeout + GRACE)
            session.listen()  # to the end: READY or a refusal, the acknowledgements, the verdict
        else:
            sock.sendall(data)
            _stream(session, outgoing.payloads, timeout)
        if not session.ready:
            _before(session)
    except KeyboardInterrupt:
        from iotnotify.errors import Interrupted
        from iotnotify.words import counted

        raise Interrupted(f"interrupted: {len(session.pending)} of {counted(session.sent, 'message')} not acknowledged"
                          + _saved(session, failed_file, " (saved to {})")) from None
    except OSError:
        pass  # the agent went away: said below
    finally:
        sock.close()
    _outcome(session, failed_file)


def _stream(session: _Session, payloads: Iterable[bytes], timeout: float) -> None:
    """Hand each line over as it is read, the agent's answers read meanwhile by a thread of its own."""
    import threading

    threading.Thread(target=session.listen, name="iotnotify-agent-reader", daemon=True).start()
    session.wait(lambda: session.ready or session.over, HANDSHAKE)
    if not session.ready:
        return
    for payload in payloads:
        if not session.hand(payload):
            session.unread = True  # the agent stopped this send: the rest of the input stays unread
            return
    session.sock.sendall(frame(END))
    session.wait(lambda: session.over, timeout + GRACE)


def _before(session: _Session) -> None:
    """The agent refused the send before publishing anything: Unavailable (another agent's
    settings, or it died), or the error `send` raises before connecting."""
    verdict = session.verdict or {}
    if verdict.get("mismatch") or not verdict.get("error"):
        raise Unavailable("the agent did not take the send")
    raise _error(verdict)


def _error(verdict: dict[str, Any]) -> IotNotifyError:
    from iotnotify import errors

    kind = getattr(errors, str(verdict.get("error")), None)
    if not (isinstance(kind, type) and issubclass(kind, errors.IotNotifyError)):
        kind = errors.DeliveryError
    return kind(str(verdict.get("message")))


def _saved(session: _Session, failed_file: str | None, template: str) -> str:
    """Write the messages not acknowledged to `failed_file` (in input order); say so with `template`."""
    with session.cond:
        undelivered = dict(session.pending)
    if not undelivered or failed_file is None:
        return ""
    from iotnotify.files import save_lines

    return save_lines(failed_file, undelivered, template)


def _outcome(session: _Session, failed_file: str | None) -> None:
    """Return if every message was acknowledged; else raise the agent's verdict, or say it died."""
    verdict = session.verdict
    if verdict is not None and not verdict.get("error") and not session.pending:
        return
    saved = _saved(session, failed_file, "; saved to {}")
    if verdict is not None and verdict.get("error"):
        error = _error(verdict)
        raise type(error)(f"{error}{saved}")
    from iotnotify.errors import DeliveryError
    from iotnotify.words import counted

    after = f"; input not read past message {session.sent}" if session.unread else ""
    raise DeliveryError(f"the agent ended before the broker acknowledged {len(session.pending)} of "
                        f"{counted(session.sent, 'message')}{after}{saved}")


def peer_pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (for `agent stop`, waiting for it to end); a zombie does not."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
