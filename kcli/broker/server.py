"""asyncio transport: frames in, frames out. No protocol knowledge beyond framing.

Each connection answers its requests strictly in order, one at a time, as Kafka does
(a connection is muted while its request is being served). Reading pauses when too
many frames wait, so a fast client cannot make us buffer without bound.

Limits, as Kafka's settings name them (see :class:`ServerLimits`): connections beyond
``max.connections`` or ``max.connections.per.ip`` are closed at once; a connection that
sent and received nothing for ``connections.max.idle.ms`` is closed; request bytes held
over all connections (received, not yet answered) stay under ``queued.max.request.bytes``
by pausing reads. One more, not Kafka's: a frame must arrive whole within
``socket.request.read.timeout.ms`` of its first byte, so a client that trickles a byte a
second cannot hold a connection (and its buffer) forever.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from kcli.broker import zero_copy
from kcli.broker.log.file_records import FileRecords
from kcli.broker.protocol.framing import BufferPool, Frame, FrameDecoder, FrameError

log = logging.getLogger("kcli.broker.server")

# Handles one request frame of a connection (its session: what the security layer
# keeps per connection, opaque here): returns the response frame, None for no response
# (acks=0 produce), or raises CloseConnection to drop the connection.
ResponseFrame = bytes | list[bytes | bytearray | memoryview | FileRecords]
"""A response frame, whole or as buffers to write one after the other."""
FrameHandler = Callable[[Frame, Any], Awaitable[ResponseFrame | None]]
SessionFactory = Callable[[str, asyncio.BaseTransport], Any]
"""(peer, transport) -> the session object handed to the frame handler."""

MAX_QUEUED_FRAMES = 32
_UNLIMITED = 2147483647


class CloseConnection(Exception):
    """The request cannot be answered; the connection is closed (Kafka's answer too)."""


class CloseAfterResponse(Exception):
    """Send this response, then close the connection ``delay`` seconds later (a failed
    authentication: the client reads why before the connection goes)."""

    def __init__(self, response: ResponseFrame, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.delay = delay


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one listener allows its clients (times in milliseconds; -1 bytes: no cap)."""

    max_frame_bytes: int = 104857600
    queued_max_bytes: int = -1
    max_connections: int = _UNLIMITED
    max_connections_per_ip: int = _UNLIMITED
    idle_ms: int = 600000
    read_timeout_ms: int = 60000

    @property
    def sweep_interval(self) -> float:
        """Seconds between checks for idle connections and late frames."""
        return min(1.0, max(0.01, min(self.idle_ms, self.read_timeout_ms) / 4000))


class _Budget:
    """Request bytes held over all connections, against ``queued.max.request.bytes``.

    Over the limit, every connection stops reading but one: the one whose unfinished
    frame started first keeps reading, so some frame always completes and is answered,
    releasing bytes (a limit that paused everyone mid-frame would wait for the read
    timeout). Memory stays under the limit plus that one frame plus one read per
    connection.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit if limit >= 0 else None
        self.used = 0
        self.starts: dict[_Connection, None] = {}  # unfinished frames, oldest first
        self.paused: dict[_Connection, None] = {}

    def over(self) -> bool:
        return self.limit is not None and self.used > self.limit

    def head(self) -> _Connection | None:
        return next(iter(self.starts), None)

    def released(self) -> None:
        """Resume what may read again: everyone under the limit, else the head."""
        if not self.paused:
            return
        if not self.over():
            waiting = list(self.paused)
            self.paused.clear()
            for connection in waiting:
                connection.resume_for_budget()
            return
        head = self.head()
        if head is not None and head in self.paused:
            del self.paused[head]
            head.resume_for_budget()


class _Connection(asyncio.BufferedProtocol):
    def __init__(self, server: KafkaServer) -> None:
        self._server = server
        self._handler = server.handler
        self._budget = server.budget
        self._decoder = FrameDecoder(server.limits.max_frame_bytes, server.buffers)
        self._frames: deque[Frame] = deque()
        self._wakeup = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._paused_queue = False
        self._paused_budget = False
        self._reading = True
        self._peer = "?"
        self.ip = "?"
        self.counted = False
        self._held = 0  # bytes this connection counts in the budget
        self._queued_bytes = 0
        self._serving = 0  # size of the frame being handled (0: none)
        self.last_active = time.monotonic()
        self._frame_started: float | None = None  # monotonic time of an unfinished frame
        self._paused_at: float | None = None
        self._session: Any = None
        self._zero_copy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self._server.admit(self)
        if refusal is not None:
            log.warning("refusing connection from %s: %s", self._peer, refusal)
            self._closed = True
            self._transport.abort()
            return
        self._session = self._server.new_session(self._peer, transport)
        # records go out by sendfile only on plain TCP, and only once the transport's
        # buffer is empty: a high-water mark of 0 makes pause/resume_writing say when
        self._zero_copy = transport.get_extra_info("ssl_object") is None
        if self._zero_copy:
            self._transport.set_write_buffer_limits(high=0)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def get_buffer(self, sizehint: int) -> memoryview:
        # reads land in the frame decoder's buffers: a request is not copied on its way in
        return self._decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        now = time.monotonic()
        self.last_active = now
        was_partial = self._decoder.buffered > 0
        try:
            frames = self._decoder.advance(nbytes)
        except FrameError as error:
            log.warning("closing connection from %s: %s", self._peer, error)
            self.close()
            return
        if frames:
            self._frames.extend(frames)
            self._queued_bytes += sum(len(f) for f in frames)
            self._wakeup.set()
            if len(self._frames) >= MAX_QUEUED_FRAMES:
                self._paused_queue = True
        self._track_frame_start(now, was_partial, bool(frames))
        self._account()
        budget = self._budget
        if budget.over() and budget.head() is not self:
            self._paused_budget = True
            budget.paused[self] = None
        self._update_reading()

    def _track_frame_start(self, now: float, was_partial: bool, completed: bool) -> None:
        starts = self._budget.starts
        if self._decoder.buffered == 0:
            self._frame_started = None
            starts.pop(self, None)
        elif not was_partial or completed:  # a new frame began in these bytes
            self._frame_started = now
            starts.pop(self, None)
            starts[self] = None

    def _account(self) -> None:
        held = self._decoder.held + self._queued_bytes + self._serving
        self._budget.used += held - self._held
        self._held = held

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        want = not (self._paused_queue or self._paused_budget)
        if want == self._reading:
            return
        self._reading = want
        if want:
            if self._paused_at is not None and self._frame_started is not None:
                self._frame_started += time.monotonic() - self._paused_at  # our wait, not theirs
            self._paused_at = None
            transport.resume_reading()
        else:
            self._paused_at = time.monotonic()
            transport.pause_reading()

    def resume_for_budget(self) -> None:
        """The budget has room again (or this connection's frame is the oldest)."""
        self._paused_budget = False
        self._update_reading()

    def eof_received(self) -> bool:
        self._closed = True
        self._wakeup.set()
        return True  # keep the write side open until queued requests are answered

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None
        self._wakeup.set()
        self._writable.set()
        self._server.forget(self)
        self._release_all()

    def _release_all(self) -> None:
        self._frames.clear()
        self._queued_bytes = 0
        self._serving = 0
        self._decoder = FrameDecoder(0)
        self._budget.starts.pop(self, None)
        self._budget.paused.pop(self, None)
        self._account()
        self._budget.released()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def close(self) -> None:
        self._closed = True
        self._frames.clear()
        self._queued_bytes = 0
        if self._transport is not None:
            self._transport.close()
        self._wakeup.set()

    def check_timeouts(self, now: float, limits: ServerLimits) -> None:
        """Close the connection if its frame is late, or it has been idle too long."""
        if self._closed or self._transport is None:
            return
        if self._frame_started is not None and self._reading:
            if (now - self._frame_started) * 1000 > limits.read_timeout_ms:
                log.warning("closing connection from %s: a request frame did not arrive "
                            "whole within %d ms", self._peer, limits.read_timeout_ms)
                self._abort()
            return
        if (self._frames or self._serving or not self._reading
                or (now - self.last_active) * 1000 <= limits.idle_ms):
            return
        log.info("closing connection from %s: idle for %d ms", self._peer, limits.idle_ms)
        self._abort()

    def _abort(self) -> None:
        transport = self._transport
        self.close()
        if transport is not None:
            transport.abort()

    def _write(self, response: ResponseFrame) -> None:
        assert self._transport is not None
        if isinstance(response, list):
            self._transport.writelines(zero_copy.materialized(response))
        else:
            self._transport.write(response)

    async def _drained(self) -> bool:
        """Wait until the transport has written everything; False once it is gone."""
        while self._transport is not None and self._transport.get_write_buffer_size():
            self._writable.clear()
            if self._transport.get_write_buffer_size():
                await self._writable.wait()
        return self._transport is not None

    async def _write_pieces(self, response: list[Any]) -> None:
        """A response whose records may still be in segment files."""
        assert self._transport is not None
        if not zero_copy.has_files(response):  # most responses: writev, buffers uncopied
            self._transport.writelines(response)
            return
        try:
            if not self._zero_copy:  # TLS
                self._transport.writelines(zero_copy.materialized(response))
                return
            await zero_copy.send_pieces(self._transport, response, self._drained)
        except OSError as error:  # the peer went away, or a segment shrank under the send
            log.info("closing connection from %s: sending a response failed: %s",
                     self._peer, error)
            self._abort()
        except zero_copy.ShortFile as short:
            log.warning("closing connection from %s: %s", self._peer, short)
            self._abort()
        finally:
            zero_copy.close_files(response)

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
                self._queued_bytes -= len(frame)
                self._serving = len(frame)
                if self._paused_queue and len(self._frames) < MAX_QUEUED_FRAMES // 2:
                    self._paused_queue = False
                    self._update_reading()
                try:
                    response = await self._handler(frame, self._session)
                except CloseConnection as reason:
                    log.info("closing connection from %s: %s", self._peer, reason)
                    break
                except CloseAfterResponse as last:
                    if self._transport is not None:
                        self._write(last.response)
                        await asyncio.sleep(last.delay)
                    log.info("closing connection from %s: %s", self._peer, last)
                    break
                finally:
                    self._serving = 0
                    del frame
                    self._account()
                    self._budget.released()
                if self._transport is None:
                    return
                self.last_active = time.monotonic()
                if isinstance(response, list):
                    await self._write_pieces(response)  # writev and sendfile: uncopied
                elif response is not None:
                    self._write(response)
                    if not self._writable.is_set():
                        await self._writable.wait()
                        self.last_active = time.monotonic()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a handler must cost one connection, never the broker
            log.exception("error serving %s; closing the connection", self._peer)
        finally:
            if self._transport is not None:
                self._transport.close()


class KafkaServer:
    """Accepts connections and feeds their frames to a handler."""

    def __init__(self, handler: FrameHandler, limits: ServerLimits,
                 new_session: SessionFactory) -> None:
        self.handler = handler
        self.limits = limits
        self.new_session = new_session
        self.budget = _Budget(limits.queued_max_bytes)
        self.buffers = BufferPool()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_ip: dict[str, int] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._listening: socket.socket | None = None

    async def start(self, sock: socket.socket, tls: ssl.SSLContext | None = None) -> None:
        """Serve connections on an already bound listening socket (over TLS when a
        context is given)."""
        loop = asyncio.get_running_loop()
        if tls is not None:
            self._acceptor = loop.create_task(self._accept_tls(sock, tls), name="tls-accept")
        else:
            self._server = await loop.create_server(
                lambda: _Connection(self), sock=sock, backlog=1024,
            )
        self._sweeper = loop.create_task(self._sweep(), name="connection-sweeper")

    async def _accept_tls(self, sock: socket.socket, tls: ssl.SSLContext) -> None:
        # Accepted here and secured one by one (not create_server(ssl=...)): a failed
        # handshake then raises where it can be logged with its peer and reason; the
        # event loop's own TLS server drops it silently.
        loop = asyncio.get_running_loop()
        self._listening = sock
        while True:
            try:
                client, address = await loop.sock_accept(sock)
            except OSError as error:  # out of descriptors, a reset before accept(): go on
                log.warning("cannot accept a connection: %s", error)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._handshake(client, address, tls))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, client: socket.socket, address: Any,
                         tls: ssl.SSLContext) -> None:
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Connection(self), client, ssl=tls,
                ssl_handshake_timeout=self.limits.read_timeout_ms / 1000)
        except (OSError, TimeoutError) as error:
            client.close()
            log.warning("TLS handshake with %s failed: %s", peer, _tls_reason(error))

    def admit(self, connection: _Connection) -> str | None:
        """Count a new connection in; or say why it is refused."""
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            return f"max.connections ({limits.max_connections}) reached"
        if self._per_ip.get(connection.ip, 0) >= limits.max_connections_per_ip:
            return f"max.connections.per.ip ({limits.max_connections_per_ip}) reached"
        self._connections.add(connection)
        self._per_ip[connection.ip] = self._per_ip.get(connection.ip, 0) + 1
        connection.counted = True
        return None

    def forget(self, connection: _Connection) -> None:
        """A counted connection is gone."""
        if not connection.counted:
            return
        connection.counted = False
        self._connections.discard(connection)
        left = self._per_ip[connection.ip] - 1
        if left:
            self._per_ip[connection.ip] = left
        else:
            del self._per_ip[connection.ip]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.check_timeouts(now, self.limits)

    async def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._acceptor is not None:
            self._acceptor.cancel()
            for task in list(self._handshakes):
                task.cancel()
            if self._listening is not None:
                self._listening.close()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()


def _tls_reason(error: BaseException) -> str:
    """Why a TLS handshake failed, in a few words."""
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "the client closed the connection (does it trust this certificate?)"
    if isinstance(error, TimeoutError):
        return "no handshake within socket.request.read.timeout.ms"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the client's certificate: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNEXPECTED_EOF_WHILE_READING"):
            return f"{reason} (a client without TLS on a TLS listener?)"
        return reason
    return str(error) or type(error).__name__
