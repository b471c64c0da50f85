"""Several server worker processes behind one listening socket, with the
connections dealt out in turn.

uvicorn's own ``--workers`` lets every worker accept from the shared socket.
The worker the kernel wakes first takes every connection waiting (asyncio's and
libuv's accept loops drain the queue), so a burst of keep-alive connections can
land on one process while the other idles. Measured on the server benchmark's
data (2 workers, wrk's 8 connections, z16 polygon tiles): about half the runs
put all 8 on one worker, at 40 to 46 requests/s against 55 to 72 when they were
split. Node's cluster module deals connections from its primary for the same
reason. Here the supervisor accepts, and hands each connection's file
descriptor (``SCM_RIGHTS``) to the next worker, which serves it with uvicorn's
own HTTP protocol: a client keeps its worker for as long as its connection
lives, and every worker gets an equal share of the connections.

The supervisor restarts a worker that dies, and on SIGTERM or SIGINT stops them
all (uvicorn's graceful shutdown: requests in flight are answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("geoplatform.serve")

#: How long the supervisor waits for a worker to take a connection before it
#: gives the connection to the next one.
HANDOFF_TIMEOUT_S = 5.0
#: What a worker sends the supervisor once its app has started. One that dies
#: before is failing to start (a bad store or layer): the supervisor stops rather
#: than restart it forever.
READY = b"r"


class _Channel:
    """The worker's end of its channel from the supervisor, closed as uvicorn
    closes its servers at shutdown (no connection is taken after that)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket):
        self.loop, self.sock = loop, sock

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    async def wait_closed(self) -> None:
        return None


class HandoffServer(uvicorn.Server):
    """A uvicorn server without a listening socket: its connections come from
    the supervisor over ``channel``."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket):
        super().__init__(config)
        self.channel = channel
        self._handoffs: set[asyncio.Task[Any]] = set()  # held until done (the loop keeps weak references)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's lifespan; no socket of its own
        protocol = functools.partial(self.config.http_protocol_class, config=self.config,
                                     server_state=self.server_state, app_state=self.lifespan.state)
        loop = asyncio.get_running_loop()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take, loop, protocol)
        self.servers = [_Channel(loop, self.channel)]  # type: ignore[list-item]
        self.channel.send(READY)

    def _take(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.channel, 1, 4)
            except BlockingIOError:
                return
            except OSError:
                fds, msg = [], b""
            if not msg and not fds:  # the supervisor is gone: stop
                self.servers[0].close()  # type: ignore[attr-defined]
                self.should_exit = True
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
                self._handoffs.add(task)
                task.add_done_callback(self._handoffs.discard)


def _worker(config_kwargs: dict[str, Any], channel: socket.socket) -> None:
    config = uvicorn.Config(**config_kwargs)
    HandoffServer(config, channel).run(sockets=[])


@dataclass
class _Slot:
    process: BaseProcess
    channel: socket.socket
    ready: bool = False


def serve(app: str, *, host: str, port: int, workers: int, factory: bool = True, log_level: str = "info") -> None:
    """Serve ``app`` (an import string) on ``host:port`` with ``workers`` processes."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    config = uvicorn.Config(app, host=host, port=port, factory=factory, log_level=log_level)
    listener = config.bind_socket()  # logs where it runs, as uvicorn does
    listener.listen(config.backlog)
    listener.setblocking(False)
    ctx = multiprocessing.get_context("spawn")
    worker_kwargs = {"app": app, "factory": factory, "log_level": log_level, "host": host, "port": port}
    stopping = failed = False

    def start() -> _Slot:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = ctx.Process(target=_worker, args=(worker_kwargs, theirs), name="geoplatform-worker", daemon=False)
        proc.start()
        theirs.close()
        mine.settimeout(HANDOFF_TIMEOUT_S)
        log.info("Started worker process [%d]", proc.pid)
        return _Slot(proc, mine)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    slots = [start() for _ in range(workers)]
    turn = 0
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    for slot in slots:
        sel.register(slot.channel, selectors.EVENT_READ, slot)
    try:
        while not stopping and not failed:
            for key, _ in sel.select(timeout=0.5):
                if key.data is not None:  # a worker says it is ready, or its end closed
                    slot = key.data
                    try:
                        msg = slot.channel.recv(16)
                    except OSError:
                        msg = b""
                    if msg:
                        slot.ready = True
                    else:
                        sel.unregister(slot.channel)
                    continue
                try:
                    conn, _ = listener.accept()
                except (BlockingIOError, TimeoutError, InterruptedError):
                    continue
                with conn:
                    for _ in range(len(slots)):
                        slot = slots[turn % len(slots)]
                        turn += 1
                        try:
                            socket.send_fds(slot.channel, [b"c"], [conn.fileno()])
                            break
                        except OSError as e:  # dead or stuck: the next one takes it
                            log.warning("Worker process [%s] did not take a connection (%s)", slot.process.pid, e)
                    # the worker holds its own descriptor now; this one is closed
            for i, slot in enumerate(slots):
                if slot.process.is_alive():
                    continue
                slot.process.join()
                if not slot.ready:
                    log.error("Worker process [%s] exited before its app started (exit code %s): stopping",
                              slot.process.pid, slot.process.exitcode)
                    failed = True
                    break
                log.warning("Worker process [%s] died (exit code %s): restarting it", slot.process.pid,
                            slot.process.exitcode)
                with contextlib.suppress(KeyError):
                    sel.unregister(slot.channel)  # still there if its end closed unseen
                slot.channel.close()
                slots[i] = start()
                sel.register(slots[i].channel, selectors.EVENT_READ, slots[i])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        listener.close()
        for slot in slots:
            slot.channel.close()
            if slot.process.is_alive() and slot.process.pid is not None:
                os.kill(slot.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for slot in slots:
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
        log.info("Stopped %d worker processes", len(slots))
    if failed:
        raise SystemExit(3)  # as uvicorn exits when its app fails to start
