"""The archive record codec: the hand-written encoder writes plain Avro that fastavro
reads back exactly (property test), for every codec, and gaps are recorded."""

from __future__ import annotations

import io
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcli.backup.reading import file_sha256, read_container, read_segment_ahead
from kcli.backup.records import (
    RECORD_SCHEMA,
    ArchiveCorrupt,
    BlockBuilder,
    SegmentFile,
    encode_long,
    encode_records,
)
from tests.backup.fakes import FakeMessage, records_of

maybe_bytes = st.one_of(st.none(), st.binary(max_size=300))
headers = st.lists(st.tuples(st.text(max_size=12), maybe_bytes), max_size=5)


@st.composite
def messages(draw: st.DrawFn) -> list[FakeMessage]:
    count = draw(st.integers(0, 40))
    offset = draw(st.integers(0, 2**62))
    out = []
    for _ in range(count):
        ts_type = draw(st.sampled_from([0, 1, 2]))
        ts = -1 if ts_type == 0 else draw(st.integers(0, 2**62))
        out.append(FakeMessage(offset, draw(maybe_bytes), draw(maybe_bytes), draw(headers),
                               ts_type, ts))
        offset += draw(st.sampled_from([1, 1, 1, 2, 7, 1000]))
        if offset >= 2**63 - 1:
            break
    return out


@given(st.integers(-(2**63), 2**63 - 1))
def test_long_encoding_is_avro(value: int) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, "long", value)
    assert encode_long(value) == buffer.getvalue()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(batch=messages(), block=st.integers(1, 5000),
       codec=st.sampled_from(["null", "deflate", "zstandard", "snappy"]))
def test_block_builder_round_trip(tmp_path: Path, batch: list[FakeMessage], block: int,
                                  codec: str) -> None:
    start = batch[0].offset_ if batch else 0
    builder = BlockBuilder("t", 0, start, 2**63 - 1)
    path = tmp_path / f"seg-{codec}-{block}.avro"
    segment = SegmentFile(path, codec, metadata={"kcli.topic": "t"})
    encoded = b""
    i = 0
    while i < len(batch):
        i = builder.add(batch, i, block)
        parts, count, _size = builder.take()
        encoded += b"".join(parts)
        segment.write_block(parts, count)
    segment.commit()
    expected = records_of(batch)
    assert encoded == encode_records(expected)  # byte-identical to the reference encoder
    assert list(read_container(path, {"kcli.topic": "t"}, RECORD_SCHEMA)) == expected
    digest = (segment.bytes, segment.sha256)
    assert list(read_segment_ahead(path, None, {"kcli.topic": "t"}, digest=digest)) == expected
    with ThreadPoolExecutor(2) as pool:
        assert list(read_segment_ahead(path, pool, {"kcli.topic": "t"}, ahead=2,
                                       digest=digest)) == expected
    assert (segment.sha256, segment.bytes) == file_sha256(path)
    with open(path, "rb") as f:  # a generic Avro reader with its own schema handling
        reader = fastavro.reader(f)
        assert reader.writer_schema["name"] == "kcli.backup.Record"
        assert reader.codec == codec
        assert list(reader) == expected
    # statistics the manifest takes from the builder
    assert builder.records == len(batch)
    if batch:
        assert (builder.first_offset, builder.last_offset) == (batch[0].offset_,
                                                               batch[-1].offset_)
        stamps = [m.ts for m in batch if m.ts >= 0]
        assert (builder.min_ts, builder.max_ts) == ((min(stamps), max(stamps)) if stamps
                                                    else (None, None))
        assert builder.log_append == sum(m.ts_type == 2 for m in batch)
        holes = [(a.offset_ + 1, b.offset_) for a, b in itertools.pairwise(batch)
                 if b.offset_ > a.offset_ + 1]
        assert builder.gaps == holes


def test_builder_stops_at_target_partition_topic_and_errors() -> None:
    batch = [FakeMessage(5), FakeMessage(6), FakeMessage(0, partition_=1), FakeMessage(7),
             FakeMessage(8, topic_="other"), FakeMessage(9), FakeMessage(12)]
    builder = BlockBuilder("t", 0, 3, 10, [(0, 1)])
    assert builder.add(batch, 0, 1 << 20) == 2  # stops at the other partition
    assert builder.gaps == [(0, 1), (3, 5)]
    assert builder.add(batch, 3, 1 << 20) == 4  # stops at the other topic
    assert builder.add(batch, 5, 1 << 20) == 6  # stops at the target (offset 12 >= 10)
    assert (builder.records, builder.expected, builder.last_offset) == (4, 10, 9)
    with pytest.raises(ValueError, match="went backwards"):
        builder.add([FakeMessage(2)], 0, 1 << 20)


def test_schema_matches_the_reference() -> None:
    fields = {f["name"]: f["type"] for f in RECORD_SCHEMA["fields"]}
    assert fields["offset"] == fields["timestamp"] == "long"
    assert fields["timestamp_type"]["symbols"] == ["NOT_AVAILABLE", "CREATE_TIME",
                                                   "LOG_APPEND_TIME"]
    assert fields["key"] == fields["value"] == ["null", "bytes"]
    assert fields["headers"]["items"]["fields"] == [
        {"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}]


@pytest.mark.parametrize("codec", ["zstandard", "snappy"])
@pytest.mark.parametrize("where", ["header", "block", "end"])
def test_any_damage_is_reported_with_the_file(tmp_path: Path, where: str, codec: str) -> None:
    """A flipped byte is caught by the digest always; reading either fails naming the
    file or (a byte of the schema's doc text, of the last sync marker) returns exactly
    the records written: never different records."""
    path = tmp_path / "seg.avro"
    segment = SegmentFile(path, codec)
    builder = BlockBuilder("t", 0, 0, 100)
    batch = [FakeMessage(i, b"k", b"v" * 100) for i in range(50)]
    builder.add(batch, 0, 1 << 20)
    parts, count, _ = builder.take()
    segment.write_block(parts, count)
    segment.commit()
    data = bytearray(path.read_bytes())
    header = len(data) - 16 - len(segment.sha256)  # somewhere before the block
    position = {"header": 40, "block": len(data) - 30, "end": len(data) - 3}[where]
    assert position < len(data)
    _ = header
    data[position] ^= 0x55
    path.write_bytes(bytes(data))
    expected = records_of(batch)
    assert file_sha256(path) != (segment.sha256, segment.bytes)
    with pytest.raises(ArchiveCorrupt, match=f"{path}: sha256 differs"):
        next(read_segment_ahead(path, None, digest=(segment.bytes, segment.sha256)))
    with ThreadPoolExecutor(1) as pool:
        for use in (None, pool):
            try:
                assert list(read_segment_ahead(path, use)) == expected
            except ArchiveCorrupt as error:
                assert str(path) in error.message  # noqa: PT017


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_random_damage_never_yields_other_records(tmp_path: Path, data: st.DataObject) -> None:
    """Any one damaged byte of a segment: verify fails naming the file, and reading the
    partition (either reader) fails naming the file or yields exactly the records
    written; never a traceback, never other data, never fewer records."""
    from kcli.backup.archive import Archive
    from tests.backup.fakes import write_archive

    root = tmp_path / "fuzz"
    batch = [FakeMessage(i, b"k%d" % i, b"value %d" % i * 7, [("h", None)], ts=1000 + i)
             for i in range(0, 600, 2)]
    if not root.exists():
        write_archive(root, "t", {0: batch}, {0: 600})
    archive = Archive.open(root)
    partition = archive.manifest.topics[0].partitions[0]
    path = archive.path_of(partition.segments[0])
    original = path.read_bytes()
    damaged = bytearray(original)
    position = data.draw(st.integers(0, len(damaged) - 1))
    damaged[position] ^= data.draw(st.integers(1, 255))
    path.write_bytes(bytes(damaged))
    expected = records_of(batch)
    try:
        with pytest.raises(ArchiveCorrupt, match=str(path)):
            archive.verify()
        with ThreadPoolExecutor(1) as pool:
            for use in (None, pool):
                try:
                    got = list(archive.records("t", partition, None, use))
                except ArchiveCorrupt as error:
                    assert str(path) in error.message  # noqa: PT017
                else:
                    assert got == expected, position
    finally:
        path.write_bytes(original)


def test_snappy_blocks_are_avro_snappy(tmp_path: Path) -> None:
    """Avro's snappy codec: raw snappy then the big-endian CRC32 of the uncompressed
    data; fastavro reads it, and the restore reader checks the CRC."""
    import zlib

    import cramjam

    from kcli.backup.reading import snappy_unblock
    from kcli.backup.records import compress_block, snappy_block

    data = b"kafka record " * 1000
    block = snappy_block(data)
    assert bytes(cramjam.snappy.decompress_raw(block[:-4])) == data
    assert block[-4:] == zlib.crc32(data).to_bytes(4, "big")
    assert snappy_unblock(block) == data
    assert compress_block("snappy", None, data, 3) == (
        encode_long(3) + encode_long(len(block)) + block)
    damaged = block[:-1] + bytes([block[-1] ^ 1])
    with pytest.raises(ValueError, match="checksum"):
        snappy_unblock(damaged)
    with pytest.raises(ValueError, match="shorter"):
        snappy_unblock(b"ab")
    # a whole file read by fastavro (its own snappy reader) and by read_segment_ahead
    path = tmp_path / "seg.avro"
    segment = SegmentFile(path, "snappy")
    builder = BlockBuilder("t", 0, 0, 100)
    batch = [FakeMessage(i, b"k", b"v" * 1000, ts=i) for i in range(100)]
    builder.add(batch, 0, 1 << 20)
    parts, count, _ = builder.take()
    segment.write_block(parts, count)
    segment.commit()
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        assert reader.codec == "snappy"
        assert list(reader) == records_of(batch)
    with ThreadPoolExecutor(1) as pool:
        assert list(read_segment_ahead(path, pool)) == records_of(batch)
