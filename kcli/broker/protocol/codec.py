"""Request and response codec around kio's generated message classes.

Request headers are parsed here by hand (they are tiny and their rules have traps:
the client id keeps an int16 length even in flexible versions); bodies are decoded
and encoded by kio, generated from Kafka's own message schemas.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import SerialError

from kcli.broker.log.file_records import FileRecords
from kcli.broker.protocol import legacy
from kcli.broker.protocol.bounds import OutOfBounds, check_body
from kcli.broker.protocol.framing import Frame
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS, ApiKey, is_supported

_HEADER = struct.Struct(">hhih")
_INT32 = struct.Struct(">i")
_MAX_TAGGED_FIELDS = 64  # headers carry at most a couple of tags; more is hostile


class MalformedRequest(Exception):
    """The frame cannot be a valid request: the connection is closed."""


class UnsupportedVersion(Exception):
    """The request names an API or version this broker does not serve."""

    def __init__(self, header: RequestHeader) -> None:
        super().__init__(f"api {header.api_key} v{header.api_version} not supported")
        self.header = header


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The parts of a request header a handler may need."""

    api_key: int
    api_version: int
    """The version the handler serves; for an old version served by translation (see
    `legacy`), the newer one it was translated to."""
    correlation_id: int
    client_id: str | None
    flexible: bool
    wire_version: int | None = None
    """The version the client sent, when it was translated."""


@cache
def _request_schema(api_key: int, version: int) -> Any:
    # kio resolves the class by its dotted name (pkgutil, import_module) on every call:
    # a few per cent of the broker's time at thousands of small requests a second
    return load_request_schema(api_key, version)


@cache
def _request_codec(api_key: int, version: int) -> tuple[Any, bool]:
    schema = _request_schema(api_key, version)
    return entity_reader(schema), bool(schema.__flexible__)


_writers: dict[type, Any] = {}


def _response_writer(response_type: type) -> Any:
    writer = _writers.get(response_type)
    if writer is None:
        writer = _writers[response_type] = entity_writer(response_type)
    return writer


@cache
def response_type(api_key: int, version: int) -> type:
    """The kio response class for an API version."""
    return load_response_schema(api_key, version)


def _read_uvarint(data: Frame, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise MalformedRequest("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise MalformedRequest("varint too long")


def _skip_tagged_fields(data: Frame, pos: int) -> int:
    count, pos = _read_uvarint(data, pos)
    if count > _MAX_TAGGED_FIELDS:
        raise MalformedRequest(f"{count} tagged fields in a request header")
    for _ in range(count):
        _tag, pos = _read_uvarint(data, pos)
        size, pos = _read_uvarint(data, pos)
        pos += size
        if pos > len(data):
            raise MalformedRequest("truncated tagged field")
    return pos


def parse_header(frame: Frame) -> tuple[RequestHeader, int]:
    """Parse a request header; returns it and the offset of the body.

    Raises UnsupportedVersion (header parsed, version unknown) or MalformedRequest.
    """
    if len(frame) < _HEADER.size:
        raise MalformedRequest("frame shorter than a request header")
    api_key, api_version, correlation_id, client_id_len = _HEADER.unpack_from(frame, 0)
    pos = _HEADER.size
    client_id: str | None = None
    if client_id_len >= 0:
        end = pos + client_id_len
        if end > len(frame):
            raise MalformedRequest("client id runs past the frame")
        client_id = bytes(frame[pos:end]).decode("utf-8", "replace")
        pos = end
    elif client_id_len != -1:
        raise MalformedRequest("negative client id length")
    old = legacy.translation(api_key, api_version)
    if old is not None:  # non-flexible, like every version it is translated to
        return RequestHeader(api_key, old.target, correlation_id, client_id, False,
                             wire_version=api_version), pos
    if not is_supported(api_key, api_version):
        unsupported = RequestHeader(api_key, api_version, correlation_id, client_id, False)
        raise UnsupportedVersion(unsupported)
    _reader, flexible = _request_codec(api_key, api_version)
    if flexible:
        pos = _skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id, flexible), pos


def decode_request(frame: Frame) -> tuple[RequestHeader, Any]:
    """Parse a whole request frame into its header and kio request object.

    The body is bounds-checked first: kio's native reader trusts array counts.
    """
    header, pos = parse_header(frame)
    if header.wire_version is not None:
        old = legacy.TRANSLATIONS[(header.api_key, header.wire_version)]
        try:
            frame = old.request_body(frame[pos:])
        except legacy.LegacyError as error:
            raise MalformedRequest(
                f"api {header.api_key} v{header.wire_version}: {error}") from None
        pos = 0
    reader, _flexible = _request_codec(header.api_key, header.api_version)
    try:
        check_body(_request_schema(header.api_key, header.api_version), frame, pos)
    except OutOfBounds as error:
        raise MalformedRequest(
            f"api {header.api_key} v{header.api_version}: {error}"
        ) from None
    try:
        request, _size = reader(frame, pos)
    except (SerialError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as error:
        raise MalformedRequest(
            f"cannot decode api {header.api_key} v{header.api_version}: {error}"
        ) from None
    return header, request


SPLICE_BYTES = 8192
"""Byte strings at least this long (a Fetch response's records) go into a response frame
by reference, not copied (see `encode_response_buffers`)."""


Buffer = bytes | bytearray | memoryview
ResponseBuffer = Buffer | FileRecords
"""A piece of a response frame: bytes, or records still in segment files (sendfile)."""


class _Buffers:
    """A kio Writable that keeps long byte strings by reference and packs the short
    fields around them into bytearrays."""

    __slots__ = ("buffers", "size", "small")

    def __init__(self) -> None:
        self.small = bytearray()
        self.buffers: list[ResponseBuffer] = [self.small]
        self.size = 0

    def write(self, data: Buffer | FileRecords) -> int:
        n = len(data)
        if n >= SPLICE_BYTES:  # FileRecords are always this long (ZERO_COPY_MIN_BYTES)
            self.buffers.append(data)
            self.small = bytearray()
            self.buffers.append(self.small)
        else:  # bytes: FileRecords never come this short
            self.small += data  # type: ignore[arg-type]
        self.size += n
        return n


def encode_response_buffers(header: RequestHeader, response: Any) -> list[ResponseBuffer]:
    """Frame a kio response object for the request it answers, as buffers to write one
    after the other (a transport's writelines): the records of a Fetch response are
    the very bytes read from the log, not copies, which saved a quarter of the broker's
    CPU time per byte consumed.

    ApiVersions responses always use header v0 (no tagged fields), whatever the
    version: clients read them before they know what the broker speaks.
    """
    out = _Buffers()
    out.write(b"\0\0\0\0")
    out.write(_INT32.pack(header.correlation_id))
    if header.flexible and header.api_key != ApiKey.API_VERSIONS:
        out.write(b"\0")
    if header.wire_version is not None:
        body = _Buffers()
        _response_writer(type(response))(body, response)
        old = legacy.TRANSLATIONS[(header.api_key, header.wire_version)]
        out.write(old.response_body(as_bytes(body.buffers)))
    else:
        _response_writer(type(response))(out, response)
    first = out.buffers[0]
    assert isinstance(first, bytearray)
    _INT32.pack_into(first, 0, out.size - 4)
    return [buffer for buffer in out.buffers if len(buffer)]


def encode_response(header: RequestHeader, response: Any) -> bytes:
    """The response frame as one byte string (see `encode_response_buffers`)."""
    return as_bytes(encode_response_buffers(header, response))


def as_bytes(buffers: list[ResponseBuffer]) -> bytes:
    """Response buffers joined into one byte string, file ranges read."""
    return b"".join(b.read() if isinstance(b, FileRecords) else b for b in buffers)


def supported_api_keys() -> list[tuple[int, int, int]]:
    """(api_key, min, max) for every API served, sorted by key: kio's versions and,
    below them, the ones served by translation."""
    out = []
    for key, (low, high) in SUPPORTED_VERSIONS.items():
        oldest = legacy.lowest_version(key)
        out.append((key, low if oldest is None else min(low, oldest), high))
    return sorted(out)
