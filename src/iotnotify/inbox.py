"""The inbox: received messages between the MQTT threads that get them and the command that uses
them, in arrival order, and bounded: a peer that publishes faster than the command reads (a
stalled pipe, a slow CMD) cannot grow it without end. When it holds QUEUE_LIMIT messages or
QUEUE_BYTES of payload, the next message waits in the MQTT thread (which holds the connection
back, as mosquitto_sub does when its reader stalls), or goes to `on_full` (respond: a request it
cannot queue is refused and said). Until the command begins to read, the MQTT thread never waits:
it still has the subscription's acknowledgements to handle, which the command waits for first.

With deliver_to() (`subscribe` printing each message as it comes) the MQTT thread renders each
message into an output buffer and never writes: the command's thread does, and only it waits on
a reader that stalls. So a stalled reader costs the connection nothing (its keep-alives go on)
until QUEUE_LIMIT messages or QUEUE_BYTES of output wait (100 s of AWS IoT Core's 100 messages a
second); only then is the connection held back, as for the queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import NoReturn

from iotnotify.errors import IotNotifyError
from iotnotify.messages import Message

QUEUE_LIMIT = 10_000  # messages waiting to be read
QUEUE_BYTES = 64 << 20  # bytes of payload waiting to be read (with deliver_to: of output waiting to be written)
ROOM_WAIT = 0.1  # s between looks at whether the inbox stopped, while a message waits for room

BURST = 0.001  # s: a message this soon after the one before is part of a burst...
FLUSH_AFTER = 0.001  # s: ...flushed with the rest of it this much later, by the waiting thread


class Inbox:
    """A thread-safe queue between the MQTT threads (producers) and the command (consumer); an
    error put in it (giving up on the connection) is raised to the consumer in its turn.

    Or, after deliver_to(), no queue of messages: each is rendered in the thread that received it
    into an output buffer, which the consumer's thread writes out in wait(), a burst at a time.
    Handing every message object from awscrt's thread to the consumer's cost a wake-up and two GIL
    hand-overs per message whenever the consumer kept up: a good part of a plain `subscribe`'s CPU
    per message (bench/README.md, "Subscribe"); bytes for a burst at once cost one."""

    def __init__(self, limit: int = QUEUE_LIMIT, on_full: Callable[[Message], None] | None = None,
                 limit_bytes: int = QUEUE_BYTES) -> None:
        self._queue: queue.SimpleQueue[Message | BaseException] = queue.SimpleQueue()
        self.limit, self.limit_bytes, self.on_full = limit, limit_bytes, on_full
        self._room = threading.Condition()  # the count and bytes queued, and room for more
        self._count = self._bytes = 0
        self._switching = False  # deliver_to() was called
        self._reading = False  # the command began to read (before, a full inbox does not hold the MQTT thread)
        self._order = threading.Lock()  # a message handed over directly waits for those queued before it
        self._render: Callable[[Message], bytes] | None = None
        self._write: Callable[[bytes | bytearray, int], None] | None = None
        self._out = bytearray()  # rendered, to be written by wait() (under _room)
        self._out_count = 0
        self._writing = (0, 0)  # bytes and messages being written now: they count against the bounds too
        self._unwritten: tuple[bytearray, int] | None = None  # taken, but the write failed (Ctrl-C): stop() writes it
        self._urgent = False  # a message on its own is in _out: written at once, not after FLUSH_AFTER
        self._wake = threading.Event()  # for wait(): output to write, or the end
        self._ended = False  # fail() was called
        self._last = 0.0  # when the last message was delivered (monotonic)
        self._stopped = False

    def put(self, message: Message) -> None:
        """Called by the client for each message received."""
        with self._order:
            if self._render is None:
                if self._make_room(len(message.payload), message.ack is not None):
                    self._queue.put(message)
                elif self.on_full is not None and not self._stopped:
                    self.on_full(message)
            elif not self._stopped:
                try:
                    self._add(self._render(message))
                except BaseException as e:  # rendering failed: wait() raises it
                    self._stopped = True
                    self._end(e)

    def _add(self, data: bytes, wait: bool = True) -> None:
        """Put a rendered message in the output for wait() to write, once there is room (a reader
        stalled this long: the connection is held back); without `wait`, at once."""
        with self._room:
            while wait and not self._stopped and self._full(len(data)):
                self._room.wait(ROOM_WAIT)
            self._out += data
            self._out_count += 1
            now = time.monotonic()
            if now - self._last > BURST:
                self._urgent = True  # on its own: out at once
            self._last = now
            if not self._wake.is_set():  # (set() takes a lock: not per message)
                self._wake.set()

    def _full(self, size: int) -> bool:
        """Whether `size` more bytes of output exceed the bounds, with what is being written now."""
        count, waiting = self._out_count + self._writing[1], len(self._out) + self._writing[0]
        return count >= self.limit or (count > 0 and waiting + size > self.limit_bytes)

    def _write_out(self) -> None:
        """Write the output waiting, if any (in the command's thread: only it waits on the reader); what
        a failed write (Ctrl-C while the reader stalls) did not write is kept for stop()."""
        write = self._write
        with self._room:
            data, count = self._out, self._out_count
            if not data or write is None:
                return
            self._out, self._out_count, self._urgent, self._writing = bytearray(), 0, False, (len(data), count)
            if not self._ended:  # the end stays a reason to wake: wait() raises it
                self._wake.clear()
        try:
            write(data, count)
        except BaseException:
            self._unwritten = (data, count)
            raise
        finally:
            with self._room:
                self._writing = (0, 0)
                self._room.notify_all()

    def _make_room(self, size: int, held_back: bool) -> bool:
        """Count a message of `size` bytes in, once there is room for it (waiting for the reader,
        unless `on_full` takes what does not fit); False if it does not go in. A message `held_back`
        by the broker's flow control (acknowledged when used, the broker told how many it may send
        unacknowledged) goes in up to QUEUE_LIMIT (a broker may send a few more than it was told:
        Mosquitto 2.0.11 does, seen here), and past that, or past QUEUE_BYTES, waits for room
        rather than go to `on_full`: refusing it would lose a message the broker took as ours."""
        limit = max(self.limit, QUEUE_LIMIT) if held_back else self.limit
        with self._room:
            while self._count >= limit or (self._count and self._bytes + size > self.limit_bytes):
                if self._stopped or (self.on_full is not None and not held_back):
                    return False
                if self._switching or not self._reading:
                    # deliver_to() waits for the lock this thread holds: go in, it drains all; or nothing
                    # reads yet (the SUBACKs this thread must handle first are still to come): go in
                    break
                self._room.wait(ROOM_WAIT)
            self._count += 1
            self._bytes += size
            return True

    def _taken(self, message: Message) -> None:
        with self._room:
            self._count -= 1
            self._bytes -= len(message.payload)
            self._room.notify()

    @property
    def waiting(self) -> int:
        """How many messages wait to be read."""
        return self._count

    def deliver_to(self, render: Callable[[Message], bytes], write: Callable[[bytes | bytearray, int], None]) -> None:
        """From now on render each message in the thread that received it (after those queued so
        far, rendered here first) for wait() to `write` (the bytes, and how many messages they
        are): a message on its own at once, a burst's (messages less than BURST apart) FLUSH_AFTER
        later, in one write. An exception either raises ends wait() with it."""
        self._switching = self._reading = True  # a message waiting for room holds the order lock: let it in
        self._write = write
        with self._room:
            self._room.notify_all()
        with self._order:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, BaseException):
                    self._queue.put(item)  # the end came first: wait() raises it
                    return
                self._taken(item)
                self._add(render(item), wait=False)  # wait() is not writing yet: all of the queue goes in
            self._render = render

    def stop(self) -> None:
        """Take nothing more (the command is ending) and write what was rendered: a message waiting
        for room goes in first, and one being rendered, if that ends within a second."""
        self._stopped = True
        with self._room:
            self._room.notify_all()
        finished = self._order.acquire(timeout=1)
        try:
            if self._write is not None:
                if self._unwritten is not None:
                    (data, count), self._unwritten = self._unwritten, None
                    self._write(data, count)
                self._write_out()
        except OSError:
            pass  # a closed pipe: nothing more can go out
        finally:
            if finished:
                self._order.release()

    def wait(self) -> NoReturn:
        """With deliver_to(): write the output as it comes (this thread alone waits on a slow
        reader), until the stream ends with an error, and raise it."""
        if self._write is None:
            raise RuntimeError("Inbox.wait() without deliver_to()")
        while True:
            woken = self._wake.wait()  # no timeout: no wake-up while idle; Ctrl-C and SIGTERM interrupt it
            try:
                self._get(0)  # the end: raised
            except queue.Empty:
                pass
            if woken:
                if not self._urgent:  # a burst: write it once the next few messages are in too
                    time.sleep(FLUSH_AFTER)
                if not self._stopped:
                    self._write_out()

    def empty(self) -> bool:
        """Whether nothing is waiting to be read now."""
        return self._queue.empty()

    def fail(self, error: IotNotifyError) -> None:
        """End the stream with `error`, after the messages already queued."""
        self._end(error)

    def _end(self, error: BaseException) -> None:
        """Queue the end, and wake wait() for it for good (under the lock _write_out clears the
        wake-up with: wait() blocks with no timeout, so no wake-up may be lost)."""
        self._queue.put(error)
        with self._room:
            self._ended = True
            self._wake.set()

    def _get(self, timeout: float | None) -> Message:
        self._reading = True
        item = self._queue.get(timeout=timeout)
        if isinstance(item, BaseException):
            self._queue.put(item)  # every later read fails the same way
            raise item
        self._taken(item)
        return item

    def messages(self, timeout: float | None = None, idle: float | None = None) -> Iterator[Message]:
        """Yield messages as they arrive until `timeout` seconds passed in all, or none arrived for
        `idle` seconds (both optional)."""
        if timeout is None and idle is None:  # the common case, per message: no clock to read
            while True:  # blocked without a timeout: no wake-up while idle (bench/idle.py); Ctrl-C and
                yield self._get(None)  # SIGTERM still interrupt the wait (Linux gives them to the main thread)
        deadline = None if timeout is None else time.monotonic() + timeout
        last = time.monotonic()
        while True:
            now = time.monotonic()
            ends = [t for t in (deadline, None if idle is None else last + idle) if t is not None]
            end = min(ends) if ends else None
            if end is not None and now >= end:
                return
            try:
                message = self._get(None if end is None else end - now)
            except queue.Empty:
                continue
            last = time.monotonic()
            yield message


    def drain(self, wait: float) -> list[Message]:
        """Every message queued now, waiting up to `wait` seconds for the first (a batch for `tail`)."""
        try:
            batch = [self._get(wait)]
        except queue.Empty:
            return []
        while True:
            try:
                batch.append(self._get(0))
            except queue.Empty:
                return batch
