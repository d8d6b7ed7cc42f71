"""asyncio transport: frames in, frames out. No protocol knowledge beyond framing.

Each connection answers its requests strictly in order, one at a time, as Kafka does
(a connection is muted while its request is being served). Reading pauses when too
many frames wait, so a fast client cannot make us buffer without bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

from kcli.broker.protocol.framing import FrameDecoder, FrameError

log = logging.getLogger("kcli.broker.server")

# Handles one request frame: returns the response frame, None for no response
# (acks=0 produce), or raises CloseConnection to drop the connection.
FrameHandler = Callable[[bytes, str], Awaitable[bytes | None]]

MAX_QUEUED_FRAMES = 32


class CloseConnection(Exception):
    """The request cannot be answered; the connection is closed (Kafka's answer too)."""


class _Connection(asyncio.Protocol):
    def __init__(self, handler: FrameHandler, max_frame_bytes: int, connections: set) -> None:
        self._handler = handler
        self._decoder = FrameDecoder(max_frame_bytes)
        self._frames: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._paused = False
        self._peer = "?"
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._connections.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except FrameError as error:
            log.warning("closing connection from %s: %s", self._peer, error)
            self.close()
            return
        if frames:
            self._frames.extend(frames)
            self._wakeup.set()
            if len(self._frames) >= MAX_QUEUED_FRAMES and not self._paused:
                self._paused = True
                assert self._transport is not None
                self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._closed = True
        self._wakeup.set()
        return True  # keep the write side open until queued requests are answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None
        self._wakeup.set()
        self._writable.set()
        self._connections.discard(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def close(self) -> None:
        self._closed = True
        self._frames.clear()
        if self._transport is not None:
            self._transport.close()
        self._wakeup.set()

    async def _serve(self) -> None:
        try:
            while True:
                if not self._frames:
                    if self._closed:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = self._frames.popleft()
                if self._paused and len(self._frames) < MAX_QUEUED_FRAMES // 2:
                    self._paused = False
                    if self._transport is not None:
                        self._transport.resume_reading()
                try:
                    response = await self._handler(frame, self._peer)
                except CloseConnection as reason:
                    log.info("closing connection from %s: %s", self._peer, reason)
                    break
                if self._transport is None:
                    return
                if response is not None:
                    self._transport.write(response)
                    if not self._writable.is_set():
                        await self._writable.wait()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a handler must cost one connection, never the broker
            log.exception("error serving %s; closing the connection", self._peer)
        finally:
            if self._transport is not None:
                self._transport.close()


class KafkaServer:
    """Accepts connections and feeds their frames to a handler."""

    def __init__(self, handler: FrameHandler, max_frame_bytes: int) -> None:
        self._handler = handler
        self._max_frame_bytes = max_frame_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    async def start(self, sock: socket.socket) -> None:
        """Serve connections on an already bound listening socket."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self._handler, self._max_frame_bytes, self._connections),
            sock=sock,
            backlog=1024,
        )

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
