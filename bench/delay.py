"""A network that is not loopback, for the benchmarks: a TCP relay on 127.0.0.1 that delivers what
each side sends to the other after a fixed one-way delay (both directions: a round trip costs twice
it), in order, at full speed otherwise. Propagation delay only, no loss or bandwidth limit, and no
privileges needed (tc netem would want CAP_NET_ADMIN, which CI machines lack).

    with Relay(target_port, one_way=0.025) as relay:   # 50 ms round trip
        connect to 127.0.0.1:relay.port
        relay.cut(5, "reset")   # the network gone for 5 s (bench/recovery.py)

A cut is one of two outages: "stall", every byte held (both ways, and on connections made
meanwhile) until the network returns, as TCP delivers what it retransmitted once the path is back
(at best: the kernel's retransmission backoff may add up to a second); "reset", every connection
ended at once and each new one ended as it is made until the network returns, as when a NAT or a
load balancer on the way forgets the connections and the route is refused.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time


class Relay:
    """127.0.0.1:port -> 127.0.0.1:target, each byte `one_way` seconds late, served from a thread."""

    def __init__(self, target: int, one_way: float) -> None:
        self.target = target
        self.one_way = one_way
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._back = 0.0  # time.monotonic() when the network returns from a cut
        self._mode = "stall"
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every connection relayed now
        self._thread = threading.Thread(target=self._run, name=f"delay-{self.port}", daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self, seconds: float, mode: str) -> float:
        """Cut the network for `seconds` ("stall" or "reset", above); when it returns (monotonic)."""
        if mode not in ("stall", "reset"):
            raise ValueError(mode)
        self._mode, self._back = mode, time.monotonic() + seconds
        if mode == "reset":
            self._loop.call_soon_threadsafe(self._reset_all)
        return self._back

    def _reset_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self._loop)  # the connections still open: end them quietly
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "reset" and time.monotonic() < self._back:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        for sock in (writer.get_extra_info("socket"), upstream_writer.get_extra_info("socket")):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the delay is ours, not Nagle's
        self._open |= {writer, upstream_writer}
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer),
                                 return_exceptions=True)
        except asyncio.CancelledError:  # the relay is closing: end quietly (asyncio 3.11 would print
            writer.close()              # the cancellation of a connection's task as an error)
            upstream_writer.close()
        finally:
            self._open -= {writer, upstream_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy reader to writer, each chunk delivered `one_way` s after it was read, in order."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                if self._mode == "stall" and due < self._back:  # held until the network returns
                    due = self._back
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        delivering = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(1 << 16):
                queue.put_nowait((time.monotonic() + self.one_way, data))
        except OSError:
            pass
        queue.put_nowait((time.monotonic() + self.one_way, b""))  # the close travels late too
        await delivering
