"""Frame decoding: any split of the byte stream gives the same frames; sizes are bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kcli.broker.protocol.framing import (
    POOLED_MIN,
    READ_ROOM,
    BufferPool,
    FrameDecoder,
    FrameError,
    frame,
)


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=200),
)
def test_any_split_yields_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = FrameDecoder(1024)
    out: list[bytes] = []
    pos = 0
    for cut in cuts:
        out += decoder.feed(stream[pos : pos + cut])
        pos += cut
    out += decoder.feed(stream[pos:])
    assert out == payloads
    assert decoder.buffered == 0


@pytest.mark.parametrize("size", [-1, -(2**31), 1025, 2**31 - 1])
def test_size_outside_the_limit_is_refused_before_buffering(size: int) -> None:
    decoder = FrameDecoder(1024)
    with pytest.raises(FrameError):
        decoder.feed(size.to_bytes(4, "big", signed=True))


def test_partial_frame_waits_for_more() -> None:
    decoder = FrameDecoder(1024)
    data = frame(b"hello")
    assert decoder.feed(data[:6]) == []
    assert decoder.buffered == 2
    assert decoder.feed(data[6:]) == [b"hello"]


def test_frames_are_read_only_views_that_later_bytes_leave_alone() -> None:
    decoder = FrameDecoder(1024)
    stream = frame(b"first") + frame(b"second")[:6]
    (first,) = decoder.feed(stream)
    assert isinstance(first, memoryview)
    assert first.readonly  # kio's reader takes nothing else
    (second,) = decoder.feed(frame(b"second")[6:] + frame(b"x" * 100))[:1]
    assert (bytes(first), bytes(second)) == (b"first", b"second")


def _receive(decoder: FrameDecoder, data: bytes, most: int) -> list[memoryview]:
    """What a BufferedProtocol transport does: reads of at most `most` bytes into the
    room the decoder offers."""
    frames: list[memoryview] = []
    while data:
        room = decoder.get_buffer()
        assert len(room) > 0
        n = min(len(room), len(data), most)
        room[:n] = data[:n]
        room.release()
        frames += decoder.advance(n)
        data = data[n:]
    return frames


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 3, 900, 20_000, 70_000, 150_000]), max_size=12),
    reads=st.integers(min_value=1, max_value=200_000),
    keep=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_frames_kept_alive_never_change_while_buffers_are_reused(
        sizes: list[int], reads: int, keep: list[bool]) -> None:
    pool = BufferPool(limit_bytes=1 << 20)
    decoder = FrameDecoder(1 << 20, pool)
    kept: list[tuple[bytes, memoryview]] = []
    for index, size in enumerate(sizes):
        payload = bytes([index + 1]) * size
        (got,) = _receive(decoder, frame(payload), reads)
        assert got == payload
        if keep[index]:
            kept.append((payload, got))
        del got
    assert all(view == payload for payload, view in kept)
    assert decoder.held == 0
    assert decoder.buffered == 0


def test_a_large_frame_is_received_in_place() -> None:
    decoder = FrameDecoder(1 << 22, BufferPool())
    data = frame(b"x" * 1_000_000)
    first = decoder.get_buffer()
    assert len(first) == READ_ROOM  # no size known yet: a small read
    first.release()
    assert _receive(decoder, data[:READ_ROOM], READ_ROOM) == []
    room = decoder.get_buffer()  # the rest of the frame, and no more, in one room
    assert len(room) == len(data) - READ_ROOM
    assert decoder.held == 1_000_000  # set aside, so the budget counts it
    room[:] = data[READ_ROOM:]
    target = room.obj
    room.release()
    (got,) = decoder.advance(len(data) - READ_ROOM)
    assert got.obj is target
    assert got == data[4:]


def test_a_large_announced_size_sets_aside_only_what_has_arrived() -> None:
    decoder = FrameDecoder(100 << 20, BufferPool())
    assert decoder.feed((100 << 20).to_bytes(4, "big") + b"x" * 100) == []
    assert len(decoder.get_buffer()) <= READ_ROOM
    assert decoder.held <= 100 + READ_ROOM
    decoder.feed(b"x" * (3 << 20))
    assert decoder.held <= 2 * ((3 << 20) + 100)  # grows with what arrives, no more


def test_a_pooled_buffer_is_reused_only_once_its_frames_are_gone() -> None:
    pool = BufferPool()
    decoder = FrameDecoder(1 << 22, pool)
    (first,) = decoder.feed(frame(b"a" * 500_000))
    first_buffer = first.obj
    (second,) = decoder.feed(frame(b"b" * 500_000))
    assert second.obj is not first_buffer  # the first frame is still alive
    assert first == b"a" * 500_000
    del first
    (third,) = decoder.feed(frame(b"c" * 500_000))
    assert third.obj is first_buffer
    assert third == b"c" * 500_000
    assert second == b"b" * 500_000


def test_the_pool_holds_no_more_than_its_limit() -> None:
    pool = BufferPool(limit_bytes=3 * 200_000)
    for _ in range(10):
        pool.give(bytearray(200_000))
        assert pool.held <= 3 * 200_000
    pool.give(bytearray(POOLED_MIN - 1))  # small ones are not worth keeping
    assert pool.held == 3 * 200_000
    pool.give(bytearray(3 * 200_000 + 1))  # nor one over the limit, at the others' cost
    assert pool.held == 3 * 200_000


def test_an_idle_decoder_holds_nothing() -> None:
    decoder = FrameDecoder(1 << 22, BufferPool())
    frames = decoder.feed(frame(b"x" * 300_000) + frame(b"y"))
    assert [len(f) for f in frames] == [300_000, 1]
    assert decoder.held == 0
    assert decoder.buffered == 0
