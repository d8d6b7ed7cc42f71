"""Frame decoding: any split of the byte stream gives the same frames; sizes are bounded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.protocol.framing import FrameDecoder, FrameError, frame


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
