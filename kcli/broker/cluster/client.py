"""A small asyncio Kafka client for broker-to-broker requests (the replica fetcher,
transaction markers and verification).

One connection, one request in flight at a time: requests are encoded with kio, framed
with their size, and the response read back and decoded with the same API version.
The peer is one of our own brokers, so no ApiVersions negotiation: callers pick versions
this codebase serves.
"""

from __future__ import annotations

import asyncio
import io
import struct
from collections.abc import Callable
from typing import Any

from kio.index import load_response_schema
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest
from kio.serial import entity_reader, entity_writer

from kcli.broker.security.inter_broker import Login
from kcli.broker.security.plain import plain_token
from kcli.broker.security.scram import AuthenticationFailed, ScramClient

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhi")
_API_VERSIONS = 18
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class BrokerConnectionError(Exception):
    """The connection failed, was closed, timed out, or answered nonsense."""


class BrokerClient:
    """A connection to one broker, opened on first use and reopened after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        login: Login | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.max_response_bytes = max_response_bytes
        self.login = login
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation_id = 0

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._writer is not None

    async def _connect(self) -> None:
        tls = self.login.tls if self.login is not None else None
        try:
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20, ssl=tls,
                server_hostname=self.host if tls is not None else None,
            )
        except (OSError, TimeoutError) as error:
            raise BrokerConnectionError(
                f"cannot connect to {self.host}:{self.port}: {error}"
            ) from None
        if self.login is not None and self.login.mechanism is not None:
            await self._authenticate(self.login)

    async def _authenticate(self, login: Login) -> None:
        """SaslHandshake v1, then the mechanism's tokens in SaslAuthenticate v2."""
        assert login.mechanism is not None
        answer = await self._exchange(SaslHandshakeRequest(mechanism=login.mechanism))
        if answer.error_code:
            raise BrokerConnectionError(f"{self.host}:{self.port} refused SASL "
                                        f"{login.mechanism} (error {answer.error_code})")

        async def token(data: bytes) -> bytes:
            reply = await self._exchange(SaslAuthenticateRequest(auth_bytes=data))
            if reply.error_code:
                raise BrokerConnectionError(f"SASL login to {self.host}:{self.port} as "
                                            f"{login.user} failed: {reply.error_message}")
            return bytes(reply.auth_bytes)

        if login.mechanism == "PLAIN":
            await token(plain_token(login.user, login.password))
            return
        client = ScramClient(login.mechanism, login.user, login.password)
        try:
            client.verify(await token(client.final(await token(client.first()))))
        except AuthenticationFailed as error:
            raise BrokerConnectionError(f"SASL login to {self.host}:{self.port}: "
                                        f"{error}") from None

    async def _exchange(self, body: Any) -> Any:
        """One request on the open connection, its response decoded."""
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(self.encode(body))
        await self._writer.drain()
        (size,) = _SIZE.unpack(await self._reader.readexactly(4))
        if not 0 <= size <= self.max_response_bytes:
            raise BrokerConnectionError(f"response size {size} out of bounds")
        return self.decode(body.__api_key__, body.__version__,
                           await self._reader.readexactly(size))

    def encode(self, body: Any) -> bytes:
        """The framed request for a kio request object."""
        self._correlation_id = (self._correlation_id + 1) & 0x7FFFFFFF
        out = io.BytesIO()
        out.write(b"\0\0\0\0")
        out.write(_HEADER.pack(body.__api_key__, body.__version__, self._correlation_id))
        raw = self.client_id.encode()
        out.write(struct.pack(">h", len(raw)) + raw)  # int16 length even in header v2
        if body.__flexible__:
            out.write(b"\0")  # no tagged fields
        entity_writer(type(body))(out, body)
        data = out.getbuffer()
        _SIZE.pack_into(data, 0, len(data) - 4)
        frame = bytes(data)
        data.release()
        return frame

    def decode(self, api_key: int, version: int, frame: bytes) -> Any:
        """Decode a response frame (without its size) for the last request sent."""
        if len(frame) < 4:
            raise BrokerConnectionError("response shorter than its header")
        (correlation_id,) = _SIZE.unpack_from(frame, 0)
        if correlation_id != self._correlation_id:
            raise BrokerConnectionError(
                f"response to request {correlation_id}, expected {self._correlation_id}"
            )
        schema = load_response_schema(api_key, version)
        offset = 4
        if schema.__flexible__ and api_key != _API_VERSIONS:
            offset += 1  # response header v1: an empty tagged-field block
        try:
            value, _size = entity_reader(schema)(frame, offset)
        except Exception as error:  # kio raises several types on garbage
            raise BrokerConnectionError(f"cannot decode the response: {error}") from None
        return value

    async def request(self, body: Any, time_limit: float) -> Any:
        """Send a request and return its decoded response within ``time_limit`` seconds.

        Any failure closes the connection (a late response would be out of step) and
        raises BrokerConnectionError; the next request reconnects.
        """
        try:
            async with asyncio.timeout(time_limit):
                if self._writer is None:
                    await self._connect()
                return await self._exchange(body)
        except BrokerConnectionError:
            self.close()
            raise
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as error:
            self.close()
            raise BrokerConnectionError(
                f"request to {self.host}:{self.port} failed: {error!r}"
            ) from None
        except BaseException:
            self.close()  # cancelled mid-request: the stream is out of step
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class BrokerClients:
    """A connection to each other broker, opened on first use, for the requests one
    broker makes of the others (markers, transaction verification)."""

    def __init__(self, client_id: str, login: Callable[[], Login | None]) -> None:
        self.client_id = client_id
        self._login = login
        """Read at each new connection: the runner sets the broker's login after start."""
        self._clients: dict[int, BrokerClient] = {}

    def get(self, node_id: int, host: str, port: int) -> BrokerClient:
        """The client of broker ``node_id``, anew when its address changed."""
        client = self._clients.get(node_id)
        if client is None or (client.host, client.port) != (host, port):
            if client is not None:
                client.close()
            client = self._clients[node_id] = BrokerClient(host, port, self.client_id,
                                                           login=self._login())
        return client

    def close(self) -> None:
        """Close every connection."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()
