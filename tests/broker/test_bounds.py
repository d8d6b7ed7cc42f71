"""The bounds check that stands between hostile bytes and kio's native reader."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from dataclasses import fields

import pytest
from kio.index import load_request_schema

from kcli.broker.protocol.bounds import OutOfBounds, check_body
from kcli.broker.protocol.codec import MalformedRequest, decode_request
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS
from tests.support.broker import kcli_env

EVERY_VERSION = [(key, v) for key, (low, high) in sorted(SUPPORTED_VERSIONS.items())
                 for v in range(low, high + 1)]


@pytest.mark.parametrize(("api_key", "version"), EVERY_VERSION)
def test_every_served_request_has_a_bounds_plan(api_key: int, version: int) -> None:
    schema = load_request_schema(api_key, version)
    if fields(schema) or schema.__flexible__:  # flexible bodies end with a tag count
        with pytest.raises(OutOfBounds):
            check_body(schema, b"", 0)
    else:
        check_body(schema, b"", 0)  # ApiVersions v0-2, ListGroups v0-2: empty bodies


@pytest.mark.parametrize(
    "frame_hex",
    [
        "0009000a00000007000000bc8699907e03dac8b0c0de",  # OffsetFetch v10, 33e9 groups
        "0003000c00000001ffff00ffffffff0f" + "00" * 20,  # Metadata v12, 4e9 topics
        "00030004000000010000" + "7fffffff" + "00" * 8,   # Metadata v4, legacy count
    ],
)
def test_huge_counts_are_refused_before_decoding(frame_hex: str) -> None:
    with pytest.raises(MalformedRequest, match="array of"):
        decode_request(bytes.fromhex(frame_hex))


@pytest.mark.system  # decodes in a child process
def test_random_frames_never_abort_the_process() -> None:
    """Decode many random and mutated frames in a child: an abort there fails here."""
    script = textwrap.dedent(
        """
        import random, struct
        from kcli.broker.protocol.codec import MalformedRequest, UnsupportedVersion, decode_request
        from kcli.broker.protocol.versions import SUPPORTED_VERSIONS
        rng = random.Random(20261125)
        apis = sorted(SUPPORTED_VERSIONS)
        for i in range(30000):
            key = rng.choice(apis)
            low, high = SUPPORTED_VERSIONS[key]
            body = bytearray(rng.randbytes(rng.randrange(0, 64)))
            # sprinkle large varints and int32 counts, the shapes that used to abort
            for _ in range(rng.randrange(0, 3)):
                if body:
                    at = rng.randrange(len(body))
                    body[at:at] = rng.choice([b"\\xff\\xff\\xff\\xff\\x0f", b"\\x7f\\xff\\xff\\xff",
                                              b"\\x00\\x00\\x10\\x00", b"\\x80\\x80\\x01"])
            frame = struct.pack(">hhih", key, rng.randint(low, high), i, -1) + bytes(body)
            try:
                decode_request(frame)
            except (MalformedRequest, UnsupportedVersion):
                pass
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=kcli_env(), timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_valid_request_passes_with_room_to_spare() -> None:
    body = struct.pack(">i", 0)  # Metadata v0: an empty topic array
    check_body(load_request_schema(3, 0), body, 0)


@pytest.mark.parametrize(
    "frame_hex",
    [
        "00200001000000010000ffffffff00",  # DescribeConfigs v1, resources null
        "0020000400000001000000000000",  # DescribeConfigs v4 (compact), resources null
        "0003000000000001ffffffffffff",  # Metadata v0: topics has no null before v1
        "0014000100000001ffff00000001ffff000003e8",  # DeleteTopics v1, a null name
    ],
)
def test_null_in_a_non_nullable_field_is_refused(frame_hex: str) -> None:
    with pytest.raises(MalformedRequest, match="non-nullable field"):
        decode_request(bytes.fromhex(frame_hex))


def test_null_where_the_schema_allows_it_passes() -> None:
    _header, request = decode_request(bytes.fromhex("0003000100000001ffffffffffff"))
    assert request.topics is None  # Metadata v1+: null is every topic
    # DescribeConfigs v1 with configuration_keys null: every key
    body = struct.pack(">ibh", 1, 2, 1) + b"t" + struct.pack(">i", -1) + b"\x00"
    _header, request = decode_request(bytes.fromhex("00200001000000010000") + body)
    assert request.resources[0].configuration_keys is None
