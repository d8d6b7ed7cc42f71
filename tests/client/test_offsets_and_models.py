"""Pure pieces of the client layer: positions, lag, percentiles, the log-dirs codec."""

from __future__ import annotations

import struct

import pytest

from kcli.cli.bench import percentile
from kcli.client.logdirs import decode_response, encode_request
from kcli.client.models import lag_of
from kcli.client.offsets import PositionSpec, parse_position
from kcli.errors import BadInput


@pytest.mark.parametrize(("text", "spec"), [
    ("beginning", PositionSpec("beginning")), ("earliest", PositionSpec("beginning")),
    ("end", PositionSpec("end")), ("latest", PositionSpec("end")),
    ("42", PositionSpec("offset", 42)), ("-10", PositionSpec("last", 10)),
    ("2024-01-02T03:04:05Z", PositionSpec("time", 1704164645000)),
    ("2024-01-02T03:04:05.250+01:00", PositionSpec("time", 1704161045250)),
])
def test_positions(text: str, spec: PositionSpec) -> None:
    assert parse_position(text) == spec


def test_reset_positions() -> None:
    assert parse_position("shift:-3", allow_shift=True) == PositionSpec("shift", -3)
    assert parse_position("shift:4", allow_shift=True) == PositionSpec("shift", 4)
    with pytest.raises(BadInput, match=r"--to: bad offset 'shift:x'"):
        parse_position("shift:x", allow_shift=True, option="--to")
    with pytest.raises(BadInput, match=r"bad offset '-3'"):
        parse_position("-3", allow_shift=True)


@pytest.mark.parametrize("text", ["", "abc", "1.5", "--1", "shift:1", "2024-13-45"])
def test_bad_positions(text: str) -> None:
    with pytest.raises(BadInput, match=r"--from: bad offset"):
        parse_position(text)


def test_lag_is_clamped_and_unknown_stays_unknown() -> None:
    assert lag_of(5, 12) == 7
    assert lag_of(12, 5) == 0  # committed beyond the end (truncated log): never negative
    assert lag_of(None, 5) is None
    assert lag_of(-1001, 5) is None
    assert lag_of(3, None) is None


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert percentile([], 0.5) is None


def _string(text: str) -> bytes:
    return struct.pack(">h", len(text)) + text.encode()


def test_describe_log_dirs_codec() -> None:
    request = encode_request(7, "kcli")
    assert struct.unpack(">ihhih", request[:14]) == (len(request) - 4, 35, 1, 7, 4)
    assert request.endswith(struct.pack(">i", -1))
    partition = struct.pack(">iqqb", 0, 1000, 0, 0) + struct.pack(">iqqb", 1, 24, 0, 0)
    future = struct.pack(">iqqb", 0, 999, 0, 1)  # a future replica: not counted
    body = (struct.pack(">ii", 7, 0) + struct.pack(">i", 2)
            + struct.pack(">h", 0) + _string("/data/a") + struct.pack(">i", 1)
            + _string("orders") + struct.pack(">i", 3) + partition + future
            + struct.pack(">h", 0) + _string("/data/b") + struct.pack(">i", 1)
            + _string("orders") + struct.pack(">i", 1) + struct.pack(">iqqb", 2, 5, 0, 0))
    assert decode_response(body, 7) == {("orders", 0): 1000, ("orders", 1): 24,
                                        ("orders", 2): 5}
    with pytest.raises(ValueError, match="correlation"):
        decode_response(body, 8)
    with pytest.raises(ValueError, match="truncated"):
        decode_response(body[:-3], 7)
