"""The archive's record format: an Avro schema, a fast block encoder, container files.

Every partition segment is a standard Avro object container file (any Avro reader opens
it) whose records follow :data:`RECORD_SCHEMA`::

    offset: long            the record's own offset in the source partition
    timestamp: long         milliseconds (a plain long, not a logical type); -1 if none
    timestamp_type: enum {NOT_AVAILABLE, CREATE_TIME, LOG_APPEND_TIME}
    key: ["null", "bytes"]  null kept apart from empty
    value: ["null", "bytes"]  null = tombstone
    headers: array<{key: string, value: ["null", "bytes"]}>  in order, duplicates kept

Topic, partition and the segment's start offset are in the file's metadata
(``kcli.topic``, ``kcli.partition``, ``kcli.start_offset``), not in each record.

Writing is the hot path of a backup, so records are encoded here directly from
confluent-kafka Messages into Avro binary (:class:`BlockBuilder`), about three times
faster than a generic Avro writer; blocks are compressed and written by
:class:`SegmentFile`. Reading is in :mod:`kcli.backup.reading` and uses fastavro, which
is also what the tests use to check that the hand-written encoding is plain Avro.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from kcli.durable import fsync_dir
from kcli.errors import OperationFailed

FORMAT_VERSION = 1
CODECS = {"zstd": "zstandard", "snappy": "snappy", "deflate": "deflate", "null": "null"}
"""Command-line codec names -> Avro codec names."""
DEFAULT_LEVELS = {"zstandard": 1, "snappy": 0, "deflate": 6, "null": 0}
"""zstd level 1: on record data it keeps nearly the ratio of level 3 at about twice the
speed, and a backup competes with the consumer for the CPU."""

TIMESTAMP_TYPES = ("NOT_AVAILABLE", "CREATE_TIME", "LOG_APPEND_TIME")
"""Enum symbols, indexed by confluent-kafka's TIMESTAMP_* constants (0, 1, 2)."""
SYNC_SIZE = 16
MAGIC = b"Obj\x01"

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Record",
    "namespace": "kcli.backup",
    "doc": "One Kafka record as it was in the source partition.",
    "fields": [
        {"name": "offset", "type": "long"},
        {"name": "timestamp", "type": "long"},
        {"name": "timestamp_type", "type": {
            "type": "enum", "name": "TimestampType", "symbols": list(TIMESTAMP_TYPES)}},
        {"name": "key", "type": ["null", "bytes"]},
        {"name": "value", "type": ["null", "bytes"]},
        {"name": "headers", "type": {"type": "array", "items": {
            "type": "record", "name": "Header",
            "fields": [{"name": "key", "type": "string"},
                       {"name": "value", "type": ["null", "bytes"]}]}}},
    ],
}

GROUP_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "CommittedOffset",
    "namespace": "kcli.backup",
    "doc": "A consumer group's committed offset on one partition, as captured.",
    "fields": [
        {"name": "group", "type": "string"},
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "metadata", "type": ["null", "string"]},
        {"name": "captured_at", "type": "long"},
    ],
}


class ArchiveCorrupt(OperationFailed):
    """A file of an archive does not hold what it should (the message names the file)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"corrupt archive: {path}: {reason}")
        self.path = str(path)
        self.reason = reason


# ------------------------------------------------------------------------ varints

def _slow_uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_U14 = [_slow_uvarint(i) for i in range(1 << 14)]
"""Complete varints of every value below 2**14."""
_C14 = [bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80)) for i in range(1 << 14)]
"""Two 7-bit groups of a longer varint, both with the continuation bit."""


def uvarint(n: int) -> bytes:
    """Avro's variable-length encoding of an unsigned (already zig-zagged) number."""
    if n < 0x4000:
        return _U14[n]
    if n < 0x1000_0000:
        return _C14[n & 0x3FFF] + _U14[n >> 14]
    if n < 0x400_0000_0000:
        return _C14[n & 0x3FFF] + _C14[(n >> 14) & 0x3FFF] + _U14[n >> 28]
    return _slow_uvarint(n)


def encode_long(n: int) -> bytes:
    """An Avro ``long``: zig-zag, then varint."""
    return uvarint(n << 1 if n >= 0 else ((-n) << 1) - 1)


def encode_bytes(data: bytes) -> bytes:
    """An Avro ``bytes`` or ``string`` (UTF-8 already applied)."""
    return encode_long(len(data)) + data


_TS_TYPE = (b"\x00", b"\x02", b"\x04")
_NULL = b"\x00"
_SOME = b"\x02"
_SOME14 = [_SOME + v for v in _U14]
"""A union's non-null branch followed by a short length."""


def encode_headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """The ``headers`` array: one block of all items, then the end marker."""
    parts = [encode_long(len(headers))]
    for key, value in headers:
        parts.append(encode_bytes(key.encode("utf-8")))
        parts.append(_NULL if value is None else _SOME + encode_bytes(value))
    parts.append(_NULL)
    return b"".join(parts)


# ------------------------------------------------------------------------ blocks

class BlockBuilder:
    """Encodes the records of ONE partition segment, straight from confluent-kafka
    Messages, into Avro block bodies; tracks what the manifest needs (offsets, counts,
    timestamps, gaps). :meth:`take` hands over a block and starts the next one; the
    statistics cover the builder's whole life (one segment)."""

    __slots__ = (
        "count",
        "expected",
        "first_offset",
        "gaps",
        "last_offset",
        "log_append",
        "max_record",
        "max_ts",
        "min_ts",
        "partition",
        "parts",
        "records",
        "size",
        "target",
        "topic",
    )

    def __init__(self, topic: str, partition: int, expected: int, target: int,
                 gaps: list[tuple[int, int]] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.expected = expected
        """The offset the next record should have; a larger one leaves a gap."""
        self.target = target
        """Records at or past this offset are not part of the snapshot."""
        self.gaps: list[tuple[int, int]] = [] if gaps is None else gaps
        """[from, to) offset ranges without records, in order (appended to)."""
        self.parts: list[bytes] = []
        self.size = 0
        """Approximate encoded size of the current block."""
        self.count = 0
        """Records in the current block."""
        self.records = 0
        self.first_offset = -1
        self.last_offset = -1
        self.min_ts: int | None = None
        self.max_ts: int | None = None
        self.log_append = 0
        self.max_record = 0

    def add(self, messages: Sequence[Any], i: int, max_size: int,
            check_topic: bool = True) -> int:
        """Encode ``messages[i:]`` while they are good records of this partition below
        the target, and the block is below ``max_size`` bytes. Returns the index of the
        first message not taken (an error event, another partition, a record at or past
        the target, or simply the end). ``check_topic=False`` when every message is
        known to be of this builder's topic (one topic per consumer)."""
        # The hot loop of a backup: ~0.5 us a record on top of reading the Message.
        # Locals only; the timestamp (with its type byte) is re-encoded only when it
        # changes; small varints come from tables.
        put = self.parts.append
        n = len(messages)
        topic = self.topic
        partition = self.partition
        target = self.target
        expected = self.expected
        size = self.size
        taken = 0
        lo = self.min_ts
        hi = self.max_ts
        u14 = _U14
        c14 = _C14
        some14 = _SOME14
        log_append = 0
        biggest = self.max_record
        first = self.first_offset
        last_stamp: Any = None
        stamp = b""
        appended = 0
        while i < n and size < max_size:
            m = messages[i]
            if m.error() is not None or m.partition() != partition or (
                    check_topic and m.topic() != topic):
                break
            offset = m.offset()
            if offset >= target:
                break
            if offset != expected:
                if offset < expected:
                    raise ValueError(f"partition {partition}: offset {offset} after "
                                     f"{expected - 1} (the log went backwards)")
                self.gaps.append((expected, offset))
            expected = offset + 1
            z = offset << 1
            if z < 0x4000:
                put(u14[z])
            elif z < 0x1000_0000:
                put(c14[z & 0x3FFF] + u14[z >> 14])
            else:
                put(uvarint(z))
            timestamp = m.timestamp()
            if timestamp != last_stamp:
                last_stamp = timestamp
                ts_type, ts = timestamp
                if ts >= 0:
                    stamp = uvarint(ts << 1) + _TS_TYPE[ts_type]
                    if lo is None or ts < lo:
                        lo = ts
                    if hi is None or ts > hi:
                        hi = ts
                else:
                    stamp = uvarint(((-ts) << 1) - 1) + _TS_TYPE[ts_type]
                appended = 1 if ts_type == 2 else 0
            put(stamp)
            log_append += appended
            key = m.key()
            if key is None:
                put(_NULL)
                record = 32
            else:
                record = len(key)
                z = record << 1
                put(some14[z] if z < 0x4000 else _SOME + uvarint(z))
                put(key)
                record += 32
            value = m.value()
            if value is None:
                put(_NULL)
            else:
                z = len(value)
                record += z
                z <<= 1
                put(some14[z] if z < 0x4000 else _SOME + uvarint(z))
                put(value)
            headers = m.headers()
            if headers:
                encoded = encode_headers(headers)
                put(encoded)
                record += len(encoded)
            else:
                put(_NULL)
            size += record
            if record > biggest:  # noqa: PLR1730 (hot loop: no call)
                biggest = record
            taken += 1
            i += 1
        if taken:
            if first < 0:
                first = messages[i - taken].offset()
            self.last_offset = expected - 1
            self.count += taken
            self.records += taken
        self.first_offset = first
        self.expected = expected
        self.size = size
        self.min_ts = lo
        self.max_ts = hi
        self.log_append += log_append
        self.max_record = biggest
        return i

    def take(self) -> tuple[list[bytes], int, int]:
        """The current block's encoded records, their count and approximate size; starts
        a new block."""
        block = (self.parts, self.count, self.size)
        self.parts = []
        self.size = 0
        self.count = 0
        return block


def encode_records(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Avro binary of records given as dicts (the schema's fields): the slow, obvious
    encoder, used for small files and to cross-check :class:`BlockBuilder`."""
    parts = []
    for record in records:
        parts.append(encode_long(record["offset"]))
        parts.append(encode_long(record["timestamp"]))
        parts.append(encode_long(TIMESTAMP_TYPES.index(record["timestamp_type"])))
        for name in ("key", "value"):
            data = record[name]
            parts.append(_NULL if data is None else _SOME + encode_bytes(data))
        headers = [(h["key"], h["value"]) for h in record["headers"]]
        parts.append(encode_headers(headers) if headers else _NULL)
    return b"".join(parts)


# ------------------------------------------------------------------------ container files

_local = threading.local()


def snappy_block(data: bytes) -> bytes:
    """Avro's ``snappy`` codec: a raw snappy block, then the CRC32 of the uncompressed
    data (4 bytes, big-endian). cramjam releases the GIL while compressing."""
    import cramjam

    compressed = cramjam.snappy.compress_raw(data)
    return b"".join((compressed, zlib.crc32(data).to_bytes(4, "big")))


def _compressor(codec: str, level: int) -> Any:
    """This thread's compress function for a codec (compressor objects are not shared
    between threads)."""
    cache: dict[tuple[str, int], Any] = getattr(_local, "compressors", None) or {}
    _local.compressors = cache
    found = cache.get((codec, level))
    if found is not None or (codec, level) in cache:
        return found
    if codec == "zstandard":
        import zstandard

        found = zstandard.ZstdCompressor(level=level, write_content_size=True,
                                         write_checksum=True).compress
    elif codec == "snappy":
        found = snappy_block
    elif codec == "deflate":
        def deflate(data: bytes) -> bytes:
            packer = zlib.compressobj(level, zlib.DEFLATED, -15)
            return packer.compress(data) + packer.flush()
        found = deflate
    elif codec != "null":
        raise ValueError(f"unknown codec {codec!r}")
    cache[(codec, level)] = found
    return found


def compress_block(codec: str, level: int | None, body: bytes, count: int) -> bytes:
    """A block of ``count`` encoded records as a container file stores it, without the
    sync marker: record count, size, then the (compressed) body. Thread-safe: a backup
    compresses blocks on a pool of threads (zstd and zlib release the GIL)."""
    compress = _compressor(codec, DEFAULT_LEVELS[codec] if level is None else level)
    data = compress(body) if compress is not None else body
    return b"".join((encode_long(count), encode_long(len(data)), data))


def container_header(schema: Mapping[str, Any], codec: str, metadata: Mapping[str, str],
            sync: bytes) -> bytes:
    meta: dict[str, bytes] = {
        "avro.schema": orjson.dumps(schema),
        "avro.codec": codec.encode("ascii"),
    }
    meta.update({k: v.encode("utf-8") for k, v in metadata.items()})
    parts = [MAGIC, encode_long(len(meta))]
    for key, value in meta.items():
        parts.append(encode_bytes(key.encode("utf-8")))
        parts.append(encode_bytes(value))
    parts.append(_NULL)
    parts.append(sync)
    return b"".join(parts)


class SegmentFile:
    """One Avro container file written to ``<path>.tmp``: header, compressed blocks, then
    :meth:`commit` flushes, fsyncs and renames it to ``path``. sha256 and size are
    computed while writing. Not thread-safe: one thread writes a file."""

    def __init__(self, path: Path, codec: str, level: int | None = None,
                 metadata: Mapping[str, str] | None = None,
                 schema: Mapping[str, Any] = RECORD_SCHEMA) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".tmp")
        self.codec = codec
        self.level = DEFAULT_LEVELS[codec] if level is None else level
        _compressor(codec, self.level)  # an unknown codec fails here, not later
        self._sync = os.urandom(SYNC_SIZE)
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.raw_bytes = 0
        self.records = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(self.tmp, "wb")  # noqa: SIM115
        self._write(container_header(schema, codec, metadata or {}, self._sync))

    def _write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._hash.update(data)
        self.bytes += len(data)

    def write_block(self, parts: Sequence[bytes], count: int) -> None:
        """Append one block of ``count`` encoded records (their bytes in ``parts``)."""
        if count:
            body = b"".join(parts)
            self.append_block(compress_block(self.codec, self.level, body, count),
                              len(body), count)

    def append_block(self, block: bytes, raw_size: int, count: int) -> None:
        """Append a block made by :func:`compress_block` with this file's codec."""
        self.raw_bytes += raw_size
        self.records += count
        self._write(block)
        self._write(self._sync)

    @property
    def sha256(self) -> str:
        """Hex digest of everything written so far."""
        return self._hash.hexdigest()

    def commit(self) -> None:
        """Make the file durable under its final name (temp, fsync, rename, fsync dir)."""
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        """Close and remove the temp file."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)


def write_container(path: Path, records: Sequence[Mapping[str, Any]], codec: str = "null",
                    schema: Mapping[str, Any] = RECORD_SCHEMA,
                    metadata: Mapping[str, str] | None = None) -> SegmentFile:
    """Write a small container file of dict records (group offsets, tests) durably."""
    import fastavro

    parsed = fastavro.parse_schema(dict(schema))
    buffer = io.BytesIO()
    for record in records:
        fastavro.schemaless_writer(buffer, parsed, dict(record))
    segment = SegmentFile(path, codec, metadata=metadata, schema=schema)
    try:
        segment.write_block([buffer.getvalue()], len(records))
        segment.commit()
    except BaseException:
        segment.abort()
        raise
    return segment
