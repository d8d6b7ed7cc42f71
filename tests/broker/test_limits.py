"""Resource limits of a real broker process: memory held for requests, connection counts,
idle and slow clients, open files; start-up errors that name their cause; file modes."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import stat
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.broker import BrokerProcess, kcli_command, kcli_env

pytestmark = pytest.mark.broker  # real broker processes, some started here directly

MakeBroker = Callable[..., BrokerProcess]
API_VERSIONS_V0 = b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x04test"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def answers(sock: socket.socket) -> bool:
    """Whether the broker answers an ApiVersions request on this connection."""
    try:
        sock.sendall(struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0)
        header = sock.recv(8, socket.MSG_WAITALL)
        if len(header) != 8:
            return False
        size = struct.unpack(">i", header[:4])[0]
        rest = sock.recv(size - 4, socket.MSG_WAITALL)
    except OSError:
        return False
    return header[4:8] == b"\x00\x00\x00\x07" and len(rest) == size - 4


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def send_for(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send what the broker takes within `seconds`; returns the bytes sent."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    with memoryview(data) as view:
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += sock.send(view[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
    return sent


@pytest.fixture
def started(make_broker: MakeBroker) -> Callable[..., BrokerProcess]:
    def start(**settings: str) -> BrokerProcess:
        broker = make_broker(settings={k.replace("_", "."): v for k, v in settings.items()})
        broker.start()
        time.sleep(0.5)  # the readiness check's client has gone
        return broker

    return start


def test_announced_frames_cost_nothing_and_queued_bytes_hold(started: Callable[..., BrokerProcess],
                                                            ) -> None:
    broker = started(queued_max_request_bytes=str(8 << 20))
    assert broker.process is not None
    before = rss_bytes(broker.process.pid)
    announced = [connect(broker.port) for _ in range(40)]
    for sock in announced:  # 100 MB frames announced, 1 KB of each sent
        sock.sendall(struct.pack(">i", 100 << 20) + b"\0" * 1024)
    senders = [connect(broker.port) for _ in range(8)]
    body = b"\0" * (24 << 20)
    total = sum(send_for(s, struct.pack(">i", 100 << 20) + body, 1.0) for s in senders)
    time.sleep(0.5)
    grown = rss_bytes(broker.process.pid) - before
    # the limit, plus one frame that may keep reading, plus the socket buffers
    assert grown < 60 << 20, (grown, total)
    with connect(broker.port) as fresh:
        pass  # accepted while the budget is spent
    for sock in announced + senders:
        sock.close()
    time.sleep(0.5)
    with connect(broker.port) as fresh:
        assert answers(fresh)


def test_max_connections_refuses_beyond_the_limit(started: Callable[..., BrokerProcess]) -> None:
    broker = started(max_connections="4")
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(broker.port)) for _ in range(4)]
        assert all(answers(s) for s in held)
        extra = stack.enter_context(connect(broker.port))
        assert closed_by_peer(extra, 2.0)
        assert all(answers(s) for s in held)  # the others keep working
        held[0].close()
        time.sleep(0.3)
        assert answers(stack.enter_context(connect(broker.port)))


def test_max_connections_per_ip(started: Callable[..., BrokerProcess]) -> None:
    broker = started(max_connections_per_ip="2")
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(broker.port)) for _ in range(2)]
        assert all(answers(s) for s in held)
        assert closed_by_peer(stack.enter_context(connect(broker.port)), 2.0)
        assert all(answers(s) for s in held)


def test_idle_connection_is_closed(started: Callable[..., BrokerProcess]) -> None:
    broker = started(connections_max_idle_ms="700")
    with connect(broker.port) as sock:
        assert answers(sock)
        start = time.monotonic()
        assert closed_by_peer(sock, 5.0)
        assert time.monotonic() - start >= 0.5
    with connect(broker.port) as busy:  # a connection in use stays
        for _ in range(6):
            assert answers(busy)
            time.sleep(0.3)


def test_slow_loris_is_closed_in_bounded_time(started: Callable[..., BrokerProcess]) -> None:
    broker = started(socket_request_read_timeout_ms="2000")
    frame = struct.pack(">i", len(API_VERSIONS_V0)) + API_VERSIONS_V0
    with connect(broker.port) as sock:
        start = time.monotonic()
        closed = False
        for byte in frame:  # a byte a second: activity, but never a whole request
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if closed_by_peer(sock, 1.0):
                closed = True
                break
        assert closed
        assert time.monotonic() - start < 6


def test_open_files_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, 4096)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, target))

    log = open(tmp_path / "broker.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        kcli_command("broker", "run", "--data-dir", str(tmp_path / "data"),
                     "--listen", "127.0.0.1:0"),
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=kcli_env(),
        preexec_fn=limit)  # noqa: PLW1509 (the test starts no threads of its own)
    try:
        deadline = time.monotonic() + 30
        while "ready" not in (tmp_path / "broker.log").read_text() and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "broker.log").read_text()
            time.sleep(0.05)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == [str(target), str(target)], line
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def run_broker(data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kcli_command("broker", "run", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
                     "--log-level", "error"),
        capture_output=True, text=True, env=kcli_env(), timeout=timeout, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "cannot listen" not in lines[0]
    for part in parts:
        assert part in lines[0], lines[0]


def test_unusable_data_dir_names_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    data_dir = tmp_path / "file" / "data"
    assert_one_line_error(run_broker(data_dir), "Not a directory", str(tmp_path / "file"))


def test_garbled_meta_properties_names_the_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "meta.properties").write_bytes(b"version=1\n\xff\xfe\xfa garbage\n")
    assert_one_line_error(run_broker(data_dir), str(data_dir / "meta.properties"), "damaged")


@contextlib.contextmanager
def small_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_disk_names_the_file(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        data_dir = disk / "data"
        data_dir.mkdir()
        with contextlib.suppress(OSError), open(disk / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        done = run_broker(data_dir)
    assert_one_line_error(done, "No space left on device", str(data_dir))


def test_data_files_and_dirs_are_private(make_broker: MakeBroker) -> None:
    from confluent_kafka import Producer

    broker = make_broker()
    broker.start()
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce("private-topic", value=b"v%d" % i)
    assert producer.flush(30) == 0
    broker.stop()
    seen = 0
    for root, dirs, files in os.walk(broker.data_dir):
        for name in dirs:
            mode = stat.S_IMODE(os.stat(Path(root) / name).st_mode)
            assert mode == 0o700, (Path(root) / name, oct(mode))
        for name in files:
            mode = stat.S_IMODE(os.stat(Path(root) / name).st_mode)
            assert mode == 0o600, (Path(root) / name, oct(mode))
            seen += 1
    assert stat.S_IMODE(broker.data_dir.stat().st_mode) == 0o700
    assert any(broker.data_dir.glob("private-topic-0/*.log"))
    assert seen > 5


def test_more_log_files_than_the_open_file_limit_allows(make_broker: MakeBroker) -> None:
    """300 partitions, each with several segments, under a 256-descriptor limit: segment
    and index files are opened as needed and the least recently used closed, so every
    record is written and read back, new clients still connect, and the broker restarts.
    (Each partition used to keep three files open for good, and its sealed segments one
    each: the broker ran out and could not even restart.)"""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    broker = make_broker(open_files=256, settings={"max.broker.partitions": "1000"}).start()
    topic, partitions = f"many-{uuid.uuid4().hex[:8]}", 300
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1,
                                  config={"segment.bytes": "1024"})])[topic].result(60)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    sent: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    for round_ in range(4):  # every segment rolls after about two batches
        for p in range(partitions):
            value = f"{p}:{round_}:".encode() + b"x" * 400
            producer.produce(topic, value, partition=p)
            sent[p].append(value)
        assert producer.flush(60) == 0
    assert len(os.listdir(f"/proc/{broker.process.pid}/fd")) <= 256  # type: ignore[union-attr]

    def read_all() -> dict[int, list[bytes]]:
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < 4 * partitions and time.monotonic() < deadline:
            for message in consumer.consume(1000, 1.0):
                assert message.error() is None, message.error()
                got[message.partition()].append(message.value())
        consumer.close()
        return got

    assert read_all() == sent
    with connect(broker.port) as fresh:
        assert answers(fresh)
    assert broker.stop() == 0
    broker.start()
    assert read_all() == sent
