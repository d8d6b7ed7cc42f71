"""Reading archive container files back: with fastavro (any file), or a partition
segment, checked against its sha256 first, with its blocks decompressed ahead on a
pool of threads (the hot path of restore and verify). Every problem with a file's bytes raises
:class:`~kcli.backup.records.ArchiveCorrupt` naming the file; a file that cannot be read
at all raises :class:`~kcli.errors.OperationFailed`."""

from __future__ import annotations

import hashlib
import io
import threading
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from kcli.backup.records import (
    MAGIC,
    RECORD_SCHEMA,
    SYNC_SIZE,
    ArchiveCorrupt,
    container_header,
    encode_long,
)
from kcli.errors import OperationFailed

_local = threading.local()


def _unreadable(path: Path, error: OSError) -> OperationFailed:
    """The error for a file of an archive that cannot be opened or read."""
    if isinstance(error, FileNotFoundError):
        return ArchiveCorrupt(path, "file is missing")
    return OperationFailed(f"cannot read {path}: {error.strerror or error}")
_registered = False


def _register_zstandard() -> None:
    """Let fastavro read zstandard blocks with the ``zstandard`` package when it has no
    zstd library of its own (fastavro >= 1.10 looks for ``backports.zstd``)."""
    global _registered
    if _registered:
        return
    import fastavro.read

    current = fastavro.read.BLOCK_READERS.get("zstandard")
    if current is None or getattr(current, "__name__", "") == "missing":
        import zstandard
        from fastavro._read import read_long  # type: ignore[attr-defined]

        decompressor = zstandard.ZstdDecompressor()

        def zstandard_read_block(fo: Any) -> io.BytesIO:
            length = read_long(fo)
            return io.BytesIO(decompressor.decompress(fo.read(length)))

        fastavro.read.BLOCK_READERS["zstandard"] = zstandard_read_block
    _registered = True


def _avro_errors() -> tuple[type[BaseException], ...]:
    """Everything reading damaged container data can raise."""
    import cramjam
    import zstandard
    from fastavro.read import SchemaResolutionError
    from fastavro.schema import SchemaParseException

    return (ValueError, EOFError, KeyError, IndexError, TypeError, OverflowError,
            AttributeError, RecursionError, UnicodeDecodeError, MemoryError, zlib.error,
            zstandard.ZstdError, cramjam.DecompressionError, OSError,
            SchemaParseException, SchemaResolutionError)


def file_metadata(reader: Any) -> dict[str, str]:
    """The ``kcli.*`` metadata of an open fastavro reader."""
    meta = getattr(reader, "metadata", {}) or {}
    return {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            for k, v in meta.items() if k.startswith("kcli.")}


def read_container(path: Path, expect: Mapping[str, str] | None = None,
                   schema: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Records of a container file, as dicts. Any framing, codec or schema problem, or
    metadata differing from ``expect``, raises :class:`ArchiveCorrupt` naming the file.
    With ``schema``, the file's writer schema must
    be exactly that one (a damaged schema could rename fields)."""
    import fastavro

    _register_zstandard()
    errors = _avro_errors()
    try:
        raw = open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise _unreadable(path, error) from None
    with raw:
        try:
            reader: Iterator[dict[str, Any]] = fastavro.reader(raw)  # type: ignore[assignment]
            meta = file_metadata(reader)
            if schema is not None:
                _check_schema(path, getattr(reader, "metadata", {}).get("avro.schema"), schema)
            for key, value in (expect or {}).items():
                if meta.get(key) != value:
                    raise ArchiveCorrupt(path, f"file metadata {key}={meta.get(key)!r}, "
                                               f"expected {value!r}")
            yield from reader
        except ArchiveCorrupt:
            raise
        except errors as error:
            detail = str(error) or type(error).__name__
            raise ArchiveCorrupt(path, f"unreadable Avro data ({detail})") from None


def _check_schema(path: Path, text: Any, schema: Mapping[str, Any]) -> None:
    try:
        found = orjson.loads(text) if text is not None else None
    except orjson.JSONDecodeError:
        found = None
    if found != schema:
        raise ArchiveCorrupt(path, "the file's Avro schema is not the archive's record schema")


# ------------------------------------------------------------------------ fast reading

def _decode_long(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """An Avro long at ``pos``: (value, position after it)."""
    shift = 0
    result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def parse_container_header(data: bytes) -> tuple[dict[str, bytes], bytes, int]:
    """(metadata, sync marker, position of the first block) of a container file."""
    if data[:4] != MAGIC:
        raise ValueError("not an Avro object container file")
    pos = 4
    meta: dict[str, bytes] = {}
    while True:
        count, pos = _decode_long(data, pos)
        if count == 0:
            break
        if count < 0:
            count = -count
            _size, pos = _decode_long(data, pos)
        for _ in range(count):
            length, pos = _decode_long(data, pos)
            key = bytes(data[pos:pos + length]).decode("utf-8")
            pos += length
            length, pos = _decode_long(data, pos)
            meta[key] = bytes(data[pos:pos + length])
            pos += length
    sync = bytes(data[pos:pos + SYNC_SIZE])
    if len(sync) != SYNC_SIZE:
        raise ValueError("truncated header")
    return meta, sync, pos + SYNC_SIZE


def snappy_unblock(data: bytes | memoryview) -> bytes:
    """The data of an Avro ``snappy`` block (raw snappy, then the big-endian CRC32 of
    the uncompressed data), checked against its CRC."""
    import cramjam

    if len(data) < 4:
        raise ValueError("snappy block shorter than its checksum")
    plain = bytes(cramjam.snappy.decompress_raw(data[:-4]))
    if zlib.crc32(plain).to_bytes(4, "big") != bytes(data[-4:]):
        raise ValueError("snappy block checksum differs")
    return plain


def _decompressor(codec: str) -> Any:
    cache: dict[str, Any] = getattr(_local, "decompressors", None) or {}
    _local.decompressors = cache
    if codec not in cache:
        if codec == "zstandard":
            import zstandard

            cache[codec] = zstandard.ZstdDecompressor().decompress
        elif codec == "snappy":
            cache[codec] = snappy_unblock
        elif codec == "deflate":
            cache[codec] = lambda data: zlib.decompressobj(-15).decompress(data)
        elif codec == "null":
            cache[codec] = bytes
        else:
            raise ValueError(f"unsupported codec {codec!r}")
    return cache[codec]


def _decompress(codec: str, data: memoryview) -> bytes:
    return _decompressor(codec)(data)


def read_segment_ahead(path: Path, pool: Any, expect: Mapping[str, str] | None = None,
                       ahead: int = 4, digest: tuple[int, str] | None = None,
                       ) -> Iterator[dict[str, Any]]:
    """Records of a segment (see :data:`RECORD_SCHEMA`), with its blocks decompressed
    ``ahead`` at a time on ``pool`` (a ThreadPoolExecutor: zstd and zlib release the GIL;
    None: decompressed here) while the records of earlier blocks are decoded. Each block
    is handed to fastavro as a one-block uncompressed container. With ``digest`` (the
    file's size and sha256 as the manifest names them), the whole file is checked
    against it before the first record is decoded."""
    import fastavro

    errors = _avro_errors()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise _unreadable(path, error) from None
    if digest is not None and (len(data), hashlib.sha256(data).hexdigest()) != digest:
        raise ArchiveCorrupt(path, "sha256 differs from the manifest (the file changed "
                                   "after it was written)")
    view = memoryview(data)
    try:
        meta, sync, pos = parse_container_header(data)
        codec = meta.get("avro.codec", b"null").decode("ascii")
        for key, value in (expect or {}).items():
            found = meta.get(key, b"").decode("utf-8", "replace")
            if found != value:
                raise ArchiveCorrupt(path, f"file metadata {key}={found!r}, expected {value!r}")
        _check_schema(path, meta.get("avro.schema"), RECORD_SCHEMA)
        plain_header = container_header(RECORD_SCHEMA, "null", {}, sync)
        blocks: list[tuple[int, memoryview]] = []
        while pos < len(data):
            count, pos = _decode_long(view, pos)
            size, pos = _decode_long(view, pos)
            if count < 0 or size < 0 or pos + size + SYNC_SIZE > len(data):
                raise ValueError("block runs past the end of the file")
            blocks.append((count, view[pos:pos + size]))
            pos += size
            if view[pos:pos + SYNC_SIZE] != sync:
                raise ValueError("sync marker differs")
            pos += SYNC_SIZE
        for count, plain in _plain_blocks(codec, blocks, pool, ahead):
            one_block = b"".join((plain_header, encode_long(count), encode_long(len(plain)),
                                  plain, sync))
            decoded = 0
            for record in fastavro.reader(io.BytesIO(one_block)):
                decoded += 1
                yield record  # type: ignore[misc]
            if decoded != count:
                raise ValueError(f"block holds {decoded} records, its header says {count}")
    except ArchiveCorrupt:
        raise
    except errors as error:
        detail = str(error) or type(error).__name__
        raise ArchiveCorrupt(path, f"unreadable Avro data ({detail})") from None


def _plain_blocks(codec: str, blocks: list[tuple[int, memoryview]], pool: Any,
                  ahead: int) -> Iterator[tuple[int, bytes]]:
    """(record count, decompressed data) of each block, in order; with ``pool``,
    ``ahead`` blocks are being decompressed on it at any time."""
    if pool is None:
        for count, body in blocks:
            yield count, _decompress(codec, body)
        return
    pending: deque[tuple[int, Any]] = deque()
    index = 0
    while index < len(blocks) or pending:
        while index < len(blocks) and len(pending) < ahead:
            count, body = blocks[index]
            pending.append((count, pool.submit(_decompress, codec, body)))
            index += 1
        count, future = pending.popleft()
        yield count, future.result()


def file_sha256(path: Path) -> tuple[str, int]:
    """(hex sha256, size) of a file; ArchiveCorrupt if it is missing, OperationFailed if
    it cannot be read."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise _unreadable(path, error) from None
    return digest.hexdigest(), size
