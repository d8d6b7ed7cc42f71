"""The ``_schemas`` topic: the registry's only storage, read and written as a Kafka client.

A reader thread follows the topic from offset 0 and hands every record to the event
loop, which applies it to the state; the registry serves once it has caught up with the
end of the topic. A write appends records with an idempotent, acks=all producer and
returns once the reader has applied them, so an answer never runs ahead of the state
every other instance will rebuild. Writes are serialised within the process, and each
write first catches up with the topic's end, where another instance may have written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from kcli.registry import errors
from kcli.registry.errors import RegistryError
from kcli.registry.state import Record

log = logging.getLogger(__name__)

TOPIC = "_schemas"
WRITE_TIMEOUT = 30.0


class StoreError(Exception):
    """The topic cannot be used (wrong cleanup policy, unreachable cluster)."""


class SchemasTopic:
    """Reads and appends ``_schemas`` records for one registry process."""

    def __init__(self, kafka_config: dict[str, Any], apply: Callable[[bytes | None,
                 bytes | None], None], topic: str = TOPIC) -> None:
        self.topic = topic
        self._config = dict(kafka_config)
        self._apply = apply
        self._applied = 0  # the next offset the state has not seen
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._prober: Consumer | None = None  # watermarks: the reader's consumer is busy polling
        self._producer: Producer | None = None
        self._write_lock = asyncio.Lock()

    # ------------------------------------------------------------------ set-up

    def ensure_topic(self, timeout: float = 30.0) -> None:
        """Create the topic (one partition, compacted) or check the one that exists:
        a ``_schemas`` that is not compacted would lose schemas, so it is refused, as
        Confluent's registry refuses it."""
        admin = AdminClient(self._config)
        new = NewTopic(self.topic, 1, replication_factor=-1,
                       config={"cleanup.policy": "compact"})
        future = admin.create_topics([new], request_timeout=timeout)[self.topic]
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise StoreError(f"cannot create {self.topic}: {error.args[0].str()}") from None
        resource = ConfigResource(ConfigResource.Type.TOPIC, self.topic)
        try:
            described = admin.describe_configs([resource])[resource].result(timeout)
        except KafkaException as error:
            raise StoreError(f"cannot describe {self.topic}: {error.args[0].str()}") from None
        policy = described.get("cleanup.policy")
        if policy is None or "compact" not in str(policy.value):
            raise StoreError(f"topic {self.topic} must have cleanup.policy=compact "
                             f"(it has {policy.value if policy else 'none'})")

    async def start(self, limit: float = 60.0) -> None:
        """Start following the topic; returns once the state has caught up with its end."""
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._consumer = Consumer({**self._config, "group.id": "kcli-schema-registry",
                                   "enable.auto.commit": False,
                                   "enable.partition.eof": False})
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._prober = Consumer({**self._config, "group.id": "kcli-schema-registry",
                                 "enable.auto.commit": False})
        self._producer = Producer({**self._config, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 0})
        self._reader = threading.Thread(target=self._follow, name="schemas-reader",
                                        daemon=True)
        self._reader.start()
        await self._catch_up(limit)

    def close(self) -> None:
        """Stop the reader and the clients."""
        self._stop.set()
        if self._reader is not None:
            self._reader.join(5)
        for consumer in (self._consumer, self._prober):
            if consumer is not None:
                consumer.close()
        if self._producer is not None:
            self._producer.flush(5)

    # ------------------------------------------------------------------ reading

    def _follow(self) -> None:
        assert self._consumer is not None
        assert self._loop is not None
        partition = TopicPartition(self.topic, 0)
        while not self._stop.is_set():
            try:
                message = self._consumer.poll(0.2)
                if message is None:
                    # records compacted away leave gaps: the position says how far we are
                    position = self._consumer.position([partition])[0].offset
                    if position >= 0:
                        self._loop.call_soon_threadsafe(self._mark, position, None, None)
                    continue
                if message.error():
                    log.warning("reading %s: %s", self.topic, message.error())
                    continue
                offset = message.offset()
                assert offset is not None
                self._loop.call_soon_threadsafe(self._mark, offset + 1, message.key(),
                                                (message.value(), ))
            except RuntimeError:
                return  # the loop closed under us: the process is stopping
            except KafkaException as error:
                log.warning("reading %s: %s", self.topic, error)
                time.sleep(0.5)

    def _mark(self, next_offset: int, key: bytes | None,
              record: tuple[bytes | None] | None) -> None:
        if record is not None:
            self._apply(key, record[0])
        self._applied = max(self._applied, next_offset)
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_applied(self, target: int, limit: float) -> None:
        deadline = time.monotonic() + limit
        while self._applied < target:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RegistryError(errors.STORE_TIMEOUT,
                                    f"Timed out waiting for {self.topic} to reach offset "
                                    f"{target} (at {self._applied})")
            assert self._changed is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _catch_up(self, limit: float) -> None:
        assert self._prober is not None
        consumer = self._prober
        try:
            _low, high = await asyncio.to_thread(
                consumer.get_watermark_offsets, TopicPartition(self.topic, 0), limit)
        except KafkaException as error:
            raise RegistryError(errors.STORE_ERROR,
                                f"cannot read {self.topic}: {error.args[0].str()}") from None
        await self._wait_applied(high, limit)

    # ------------------------------------------------------------------ writing

    async def write(self, plan: Callable[[], tuple[list[Record], object]]) -> object:
        """Catch up, run ``plan`` on the current state, append its records and wait
        until they are applied; returns the plan's answer. One write at a time."""
        async with self._write_lock:
            await self._catch_up(WRITE_TIMEOUT)
            records, answer = plan()
            if records:
                last = await asyncio.to_thread(self._append, records)
                await self._wait_applied(last + 1, WRITE_TIMEOUT)
            return answer

    def _append(self, records: list[Record]) -> int:
        assert self._producer is not None
        offsets: list[int] = []
        failures: list[str] = []

        def delivered(error: KafkaError | None, message: Any) -> None:
            if error is not None:
                failures.append(error.str())
            else:
                offsets.append(message.offset())

        for key, value in records:
            self._producer.produce(self.topic, value=value, key=key, partition=0,
                                   on_delivery=delivered)
        left = self._producer.flush(WRITE_TIMEOUT)
        if failures or left or len(offsets) != len(records):
            why = failures[0] if failures else "timed out"
            raise RegistryError(errors.STORE_ERROR, f"Error while writing to {self.topic}: {why}")
        return max(offsets)

