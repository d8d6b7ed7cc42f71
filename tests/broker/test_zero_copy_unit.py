"""send_pieces on a socket pair: bytes and file ranges arrive in order, and a file that
ended early stops the frame (the connection is then closed) instead of sending less."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from kcli.broker.log.file_records import FileRecords
from kcli.broker.zero_copy import ShortFile, send_pieces


class _Transport:
    """The few transport methods send_pieces uses, writing at once to a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def writelines(self, pieces: list[bytes]) -> None:
        self.sock.sendall(b"".join(pieces))

    def get_write_buffer_size(self) -> int:
        return 0


async def _never() -> bool:
    raise AssertionError("nothing was buffered")


def test_pieces_arrive_in_order(tmp_path: Path) -> None:
    path = tmp_path / "segment.log"
    path.write_bytes(os.urandom(200_000))
    ours, theirs = socket.socketpair()
    with ours, theirs, open(path, "rb") as file:
        records = FileRecords.of([(file.fileno(), 1000, 100_000), (file.fileno(), 0, 10)])
        pieces: list[Any] = [b"head", bytearray(b"er"), records, b"tail"]
        asyncio.run(send_pieces(_Transport(ours), pieces, _never))  # type: ignore[arg-type]
        ours.shutdown(socket.SHUT_WR)
        received = b"".join(iter(lambda: theirs.recv(65536), b""))
        data = path.read_bytes()
        assert received == b"header" + data[1000:101_000] + data[:10] + b"tail"
        records.close()


def test_a_file_that_ended_early_stops_the_frame(tmp_path: Path) -> None:
    path = tmp_path / "segment.log"
    path.write_bytes(b"x" * 1000)
    ours, theirs = socket.socketpair()
    with ours, theirs, open(path, "rb") as file:
        records = FileRecords.of([(file.fileno(), 0, 1000)])
        os.truncate(path, 400)
        with pytest.raises(ShortFile, match="600 bytes early"):
            asyncio.run(send_pieces(_Transport(ours), [records], _never))  # type: ignore[arg-type]
        records.close()
