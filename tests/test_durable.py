"""kcli.durable: whole writes, atomic replacement, directory fsync."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli import durable
from kcli.durable import fsync_dir, make_private_dir, write_all, write_atomically


@pytest.fixture
def umask() -> Iterator[int]:
    old = os.umask(0o022)
    try:
        yield 0o022
    finally:
        os.umask(old)


def short_writes(monkeypatch: pytest.MonkeyPatch, most: int) -> list[int]:
    """Make os.write write at most ``most`` bytes per call; returns the sizes written."""
    real_write = os.write
    sizes: list[int] = []

    def write(fd: int, data: bytes | bytearray | memoryview) -> int:
        written = real_write(fd, bytes(data[:most]))
        sizes.append(written)
        return written

    monkeypatch.setattr(durable.os, "write", write)
    return sizes


def test_write_all_completes_short_writes(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytes(range(256)) * 4
    sizes = short_writes(monkeypatch, 100)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data
    assert len(sizes) == 11


def test_writev_all_completes_a_short_writev(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [bytearray(b"head" * 3), memoryview(bytes(range(256)) * 4)]
    real_writev = os.writev
    monkeypatch.setattr(durable.os, "writev",
                        lambda fd, buffers: real_writev(fd, [bytes(buffers[0][:5])]))
    sizes = short_writes(monkeypatch, 100)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        assert durable.writev_all(fd, parts) == 12 + 1024
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(parts)
    assert sum(sizes) == 12 + 1024 - 5  # the rest went by write_all, short writes and all


def test_write_atomically_completes_short_writes(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    short_writes(monkeypatch, 7)
    write_atomically(tmp_path / "f", b"a longer text than seven bytes")
    assert (tmp_path / "f").read_bytes() == b"a longer text than seven bytes"


def test_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b"old")
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            failing: str) -> None:
    path = tmp_path / "state.json"
    write_atomically(path, b"old")

    def fail(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(durable.os, failing, fail)
    with pytest.raises(OSError, match="no space left"):
        write_atomically(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["state.json"]  # the temp file is gone too


def test_temp_files_are_hidden_and_end_in_tmp(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Log recovery and backup resume remove leftover ``*.tmp`` files after a crash."""
    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(durable.os, "replace", replace)
    write_atomically(tmp_path / "leader-epoch-checkpoint", b"0\n")
    [name] = seen
    assert name.startswith(".leader-epoch-checkpoint.")
    assert name.endswith(".tmp")


@pytest.mark.usefixtures("umask")
@pytest.mark.parametrize(("mode", "expected"), [(0o600, 0o600), (0o644, 0o644),
                                                (0o666, 0o644)])
def test_mode_is_kept_and_the_umask_applies(tmp_path: Path, mode: int, expected: int) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_atomically(path, b"secret", mode=mode)
    assert stat.S_IMODE(path.stat().st_mode) == expected
    assert path.read_bytes() == b"secret"


def test_default_mode_is_private(tmp_path: Path, umask: int) -> None:
    write_atomically(tmp_path / "f", b"x")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600 & ~umask


def test_an_error_names_the_target_not_the_temp_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        write_atomically(tmp_path / "missing" / "f", b"x")
    assert caught.value.filename == str(tmp_path / "missing" / "f")


def test_private_dirs_and_their_parents(tmp_path: Path, umask: int) -> None:
    make_private_dir(tmp_path / "a" / "b" / "c")
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700 & ~umask
    make_private_dir(tmp_path / "a")  # exists: fine
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError) as caught:
        make_private_dir(tmp_path / "file" / "d")
    assert caught.value.filename == str(tmp_path / "file")


def test_fsync_dir_syncs_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    fsync_dir(tmp_path)
    assert len(synced) == 1


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP])
def test_fsync_dir_accepts_a_filesystem_without_directory_fsync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def fsync(_fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(durable.os, "fsync", fsync)
    fsync_dir(tmp_path)


def test_fsync_dir_raises_an_io_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []
    real_close = os.close

    def fsync(_fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    def close(fd: int) -> None:
        closed.append(fd)
        real_close(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "close", close)
    with pytest.raises(OSError, match="I/O error"):
        fsync_dir(tmp_path)
    assert len(closed) == 1  # the directory's descriptor is not leaked


def test_fsync_dir_of_a_directory_that_is_gone(tmp_path: Path) -> None:
    fsync_dir(tmp_path / "deleted")
