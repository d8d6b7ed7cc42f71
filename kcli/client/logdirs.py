"""Topic sizes on disk from DescribeLogDirs, which confluent-kafka does not expose.

One DescribeLogDirs v1 request (a standard Kafka API since 1.0, answered by any
cluster) per broker leading a partition, over a plain TCP connection. Only used when
the connection needs no TLS or SASL (``security.protocol`` PLAINTEXT); otherwise, or
on any failure, sizes are simply unknown and ``topic list`` shows "-".
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Any

from kcli.client.cluster import Cluster
from kcli.client.wire import is_plaintext, recv_frame

API_KEY = 35
API_VERSION = 1
_MAX_COUNT = 1_000_000


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("truncated DescribeLogDirs response")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def count(self) -> int:
        n = int(self.take(">i"))
        if n < 0:
            return 0
        if n > _MAX_COUNT:
            raise ValueError("implausible array length")
        return n

    def string(self) -> str:
        n = int(self.take(">h"))
        if n < 0:
            return ""
        if self.pos + n > len(self.data):
            raise ValueError("truncated string")
        text = self.data[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return text


def encode_request(correlation_id: int, client_id: str = "kcli") -> bytes:
    """A framed DescribeLogDirs v1 request for every topic."""
    cid = client_id.encode()
    body = struct.pack(">hhih", API_KEY, API_VERSION, correlation_id, len(cid)) + cid
    body += struct.pack(">i", -1)  # topics: null = all
    return struct.pack(">i", len(body)) + body


def decode_response(frame: bytes, correlation_id: int) -> dict[tuple[str, int], int]:
    """{(topic, partition): size in bytes} from a response frame (without the length)."""
    reader = _Reader(frame)
    if reader.take(">i") != correlation_id:
        raise ValueError("correlation id mismatch")
    reader.take(">i")  # throttle_time_ms
    sizes: dict[tuple[str, int], int] = {}
    for _ in range(reader.count()):
        error = reader.take(">h")
        reader.string()  # log dir
        for _ in range(reader.count()):
            topic = reader.string()
            for _ in range(reader.count()):
                partition = reader.take(">i")
                size = reader.take(">q")
                reader.take(">q")  # offset lag
                is_future = reader.take(">b")
                if error == 0 and not is_future:
                    key = (topic, partition)
                    sizes[key] = sizes.get(key, 0) + size
    return sizes


def describe_log_dirs(host: str, port: int, timeout: float) -> dict[tuple[str, int], int]:
    """Partition sizes held by one broker."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(encode_request(1))
        return decode_response(recv_frame(sock), 1)


def topic_sizes(cluster: Cluster, metadata: Any, topics: Iterable[str]) -> dict[str, int]:
    """Bytes of the leader replicas of each topic; topics with any unknown partition
    are left out."""
    if not is_plaintext(cluster.config):
        return {}
    wanted = set(topics)
    leaders: dict[tuple[str, int], int] = {}
    for name in wanted:
        topic = metadata.topics.get(name)
        if topic is None:
            continue
        for pid, partition in topic.partitions.items():
            leaders[(name, pid)] = partition.leader
    by_broker: dict[int, dict[tuple[str, int], int]] = {}
    timeout = min(2.0, cluster.timeout)
    for broker_id in sorted(set(leaders.values())):
        broker = metadata.brokers.get(broker_id)
        if broker is None:
            continue
        try:
            by_broker[broker_id] = describe_log_dirs(broker.host, broker.port, timeout)
        except (OSError, ValueError):
            continue
    sizes: dict[str, int] = {}
    unknown: set[str] = set()
    for (name, pid), leader in leaders.items():
        size = by_broker.get(leader, {}).get((name, pid))
        if size is None:
            unknown.add(name)
        else:
            sizes[name] = sizes.get(name, 0) + size
    return {name: size for name, size in sizes.items() if name not in unknown}
