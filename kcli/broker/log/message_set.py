"""Message format v0 and v1 (the MessageSet of Produce v0-2 and Fetch v0-3).

Before record batches (v2, Kafka 0.11), a partition's data was a sequence of messages::

    offset int64 | size int32 | crc uint32 | magic int8 | attributes int8
    | timestamp int64 (magic 1 only) | key int32-length bytes | value int32-length bytes

with a CRC32 (not CRC32C) over magic..value. A compressed set is one wrapper message
whose value is the compressed inner set (attributes bits 0-2: 1 gzip, 2 snappy, 3 lz4);
bit 3 of a v1 message is LogAppendTime. Kafka 3.9 converts on the way in (one v2 batch,
as LogValidator does) and on the way out for an old Fetch (RecordsUtil.downConvert),
which is what `up_convert` and `down_convert` do. Down-converted messages go out
uncompressed. zstd-compressed batches are not converted: no v0/v1 reader knows zstd,
and Kafka answers UNSUPPORTED_COMPRESSION_TYPE instead (`ZstdBatch`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from kcli.broker.log.batch import LOG_OVERHEAD, iter_batches
from kcli.broker.log.errors import CorruptBatch
from kcli.broker.log.records import (
    COMPRESSION_ZSTD,
    Record,
    decode_records,
    decompress,
    encode_batch,
)

_HEAD = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_CODECS = {0: 0, 1: 1, 2: 2, 3: 3}  # legacy codec bits -> batch codec ids (the same)
LOG_APPEND_TIME = 0x08
NO_TIMESTAMP = -1


class ZstdBatch(CorruptBatch):
    """A stored batch is zstd-compressed: there is no v0/v1 form of it."""


@dataclass(frozen=True, slots=True)
class Message:
    """One uncompressed v0/v1 message."""

    offset: int
    magic: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def _nullable(data: memoryview, pos: int, end: int) -> tuple[bytes | None, int]:
    if pos + 4 > end:
        raise CorruptBatch("message truncated")
    (size,) = _INT32.unpack_from(data, pos)
    pos += 4
    if size < 0:
        return None, pos
    if pos + size > end:
        raise CorruptBatch("message field runs past the message")
    return bytes(data[pos:pos + size]), pos + size


def messages(data: bytes | memoryview, *, nested: bool = False) -> Iterator[Message]:
    """The messages of a set, compressed wrappers opened (one level, as Kafka allows).
    A partial message at the end (a fetch cut at its size limit) is left out; a bad
    CRC, magic or layout raises CorruptBatch."""
    view = memoryview(data)
    pos = 0
    while pos + LOG_OVERHEAD <= len(view):
        offset, size = struct.unpack_from(">qi", view, pos)
        end = pos + LOG_OVERHEAD + size
        if size < _HEAD.size - LOG_OVERHEAD + 8:
            raise CorruptBatch(f"message of {size} bytes is too small")
        if end > len(view):
            return
        _offset, _size, crc, magic, attributes = _HEAD.unpack_from(view, pos)
        if magic not in (0, 1):
            raise CorruptBatch(f"message magic {magic} in a message set")
        if zlib.crc32(view[pos + 16:end]) != crc:
            raise CorruptBatch("message CRC mismatch")
        body = pos + _HEAD.size
        timestamp = NO_TIMESTAMP
        if magic == 1:
            if body + 8 > end:
                raise CorruptBatch("message truncated")
            (timestamp,) = _INT64.unpack_from(view, body)
            body += 8
        key, body = _nullable(view, body, end)
        value, body = _nullable(view, body, end)
        if body != end:
            raise CorruptBatch("message has bytes after its value")
        codec = attributes & 0x07
        if codec:
            if nested:
                raise CorruptBatch("a compressed message inside a compressed message")
            if codec not in _CODECS:
                raise CorruptBatch(f"unknown message codec {codec}")
            inner = list(messages(decompress(_CODECS[codec], value or b""), nested=True))
            stamp = timestamp if attributes & LOG_APPEND_TIME else None
            for message in inner:
                yield Message(message.offset, message.magic,
                              stamp if stamp is not None else message.timestamp,
                              message.key, message.value)
        else:
            yield Message(offset, magic, timestamp, key, value)
        pos = end


def up_convert(data: bytes | memoryview) -> bytes:
    """A producer's message set as one uncompressed v2 batch, offsets 0..n-1 (the log
    assigns the real ones), timestamps kept (v0 messages have none: -1)."""
    found = [Record(i, m.timestamp, m.key, m.value) for i, m in enumerate(messages(data))]
    if not found:
        raise CorruptBatch("an empty message set")
    return encode_batch(found)


def encode_message(offset: int, magic: int, timestamp: int, key: bytes | None,
                   value: bytes | None, attributes: int = 0) -> bytes:
    """One uncompressed message, with its CRC."""
    body = bytearray(struct.pack(">bb", magic, attributes))
    if magic == 1:
        body += _INT64.pack(timestamp)
    for field in (key, value):
        if field is None:
            body += _INT32.pack(-1)
        else:
            body += _INT32.pack(len(field))
            body += field
    return (struct.pack(">qiI", offset, len(body) + 4, zlib.crc32(body)) + bytes(body))


def down_convert(data: bytes | memoryview, magic: int) -> bytes:
    """Stored v2 batches as v0 or v1 messages with their absolute offsets. Control
    batches (transaction markers) and headers have no v0/v1 form and are dropped; a
    partial batch at the end is left out, as a fetch cut at its size limit."""
    out = bytearray()
    view = memoryview(data)
    for header in iter_batches(view):
        if header.magic != 2:
            raise CorruptBatch(f"stored batch magic {header.magic}")
        if header.is_control:
            continue
        if header.compression == COMPRESSION_ZSTD:
            raise ZstdBatch(f"batch at offset {header.base_offset} is zstd-compressed")
        append_time = header.timestamp_type == 1
        attributes = LOG_APPEND_TIME if magic == 1 and append_time else 0
        for record in decode_records(view, header):
            out += encode_message(record.offset, magic, record.timestamp, record.key,
                                  record.value, attributes)
    return bytes(out)
