"""Producing records: a thin, fast wrapper around confluent-kafka's Producer.

Only failed deliveries are reported back (``delivery.report.only.error``), so the hot
loop pays nothing per successful record; batching is tuned with ``linger.ms`` and
``batch.size``; the queue is served every few thousand records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kcli.client.cluster import ErrorWatch
from kcli.errors import (
    KcliError,
    NotFound,
    OperationFailed,
    Unreachable,
    from_kafka_error,
    kafka_error_class,
)

# kcli's defaults; a profile or -X overrides any of them.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "delivery.report.only.error": True,
}
POLL_EVERY = 5_000
_MAX_REPORTED = 5


@dataclass
class ProduceReport:
    """What happened to the records handed to a RecordProducer."""

    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    first_error_name: str | None = None
    latencies: list[float] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Records acknowledged by the cluster."""
        return self.sent - self.failed

    def failure(self, topic: str) -> KcliError | None:
        """The error a command should exit with, if any record failed."""
        if not self.failed:
            return None
        cls = kafka_error_class(self.first_error_name or "")
        detail = self.errors[0] if self.errors else "delivery failed"
        hint = None
        if self.first_error_name in ("MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE"):
            hint = (f"the topic's max.message.bytes bounds each batch: raise it with "
                    f"`kcli topic alter {topic} -c max.message.bytes=N`")
        return cls(f"{self.failed} of {self.sent} records to {topic} failed: {detail}",
                   hint=hint)


class RecordRejected(Exception):
    """The client refused to queue one record (too large, a partition that does not
    exist...); ``index`` is its position in the values given to ``send_values``."""

    def __init__(self, error: KcliError, index: int = 0) -> None:
        super().__init__(error.message)
        self.error = error
        self.index = index
        self.lineno: int | None = None
        """The input line it came from, when the caller knows it."""


class RecordProducer:
    """Sends records to one topic and keeps a :class:`ProduceReport`."""

    def __init__(self, config: Mapping[str, Any], topic: str, *, timeout: float = 30.0,
                 measure_latency: bool = False) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.timeout = timeout
        self.report = ProduceReport()
        self.watch = ErrorWatch(str(config.get("bootstrap.servers", "")))
        merged: dict[str, Any] = dict(PRODUCER_DEFAULTS)
        merged.update(config)
        if measure_latency:
            merged["delivery.report.only.error"] = False
        merged["error_cb"] = self.watch
        merged["on_delivery"] = self._on_latency if measure_latency else self._on_delivery
        self._producer = Producer(merged)
        self._since_poll = 0
        self._max_bytes = merged.get("message.max.bytes", 1_000_000)

    # -- callbacks (called from poll/flush)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            self.watch.connected = True
            return
        report = self.report
        report.failed += 1
        if report.first_error_name is None:
            report.first_error_name = error.name()
        if len(report.errors) < _MAX_REPORTED:
            where = f"partition {message.partition()}" if message.partition() >= 0 else ""
            report.errors.append(f"{error.str()}" + (f" ({where})" if where else ""))

    def _on_latency(self, error: Any, message: Any) -> None:
        if error is None:
            self.watch.connected = True
            latency = message.latency()
            if latency is not None:
                self.report.latencies.append(latency)
        else:
            self._on_delivery(error, message)

    def check_topic(self) -> None:
        """Make sure the topic exists, asking through this producer's own connection
        (the cluster may auto-create it, as for any producer); NotFound otherwise."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + self.timeout
        slice_ = 0.05  # short at first: a refused connection shows up in milliseconds
        while True:
            self.watch.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unreachable(f"no metadata from {self.watch.bootstrap} in "
                                  f"{self.timeout:g}s")
            try:
                metadata = self._producer.list_topics(self.topic,
                                                      timeout=min(slice_, remaining))
            except KafkaException as error:
                if error.args and error.args[0].name() in ("_TRANSPORT", "_TIMED_OUT"):
                    self._producer.poll(0)
                    slice_ = min(slice_ * 2, 1.0)
                    continue
                raise from_kafka_error(error, "metadata") from None
            break
        self.watch.connected = True
        topic = metadata.topics.get(self.topic)
        problem = topic.error if topic is not None else None
        if topic is None or (problem is not None and problem.name() in (
                "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC")):
            raise NotFound(f"topic {self.topic!r} does not exist (and the cluster does not "
                           "create topics automatically)", hint="kcli topic create")
        if problem is not None and problem.code() != 0 and problem.name() != "LEADER_NOT_AVAILABLE":
            raise from_kafka_error(problem, f"topic {self.topic}")

    # -- sending

    def _serve(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)
        if self.watch.fatal is not None:
            self._producer.purge()
            raise self.watch.fatal

    def _wait_for_room(self) -> None:
        self._serve(0.01)

    def send(self, value: bytes | None, key: bytes | None = None, partition: int = -1,
             timestamp: int = 0, headers: Sequence[tuple[str, bytes | None]] | None = None,
             ) -> None:
        """Queue one record (blocking briefly while the local queue is full)."""
        while True:
            try:
                self._producer.produce(self.topic, value, key, partition,
                                       timestamp=timestamp,
                                       headers=list(headers) if headers else None)
                break
            except BufferError:
                self._wait_for_room()
            except Exception as error:  # KafkaException for a bad partition etc.
                raise self._rejected(error, value, key) from None
        self.report.sent += 1
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self._since_poll = 0
            self._serve()

    def send_values(self, values: Sequence[bytes], partition: int = -1) -> int:
        """The hot path: queue plain values (no key, no headers). Returns how many.

        The loop does nothing but call produce(); the queue is served once per call
        (a chunk of lines), or when it is full."""
        produce = self._producer.produce
        topic = self.topic
        # An `except` clause costs nothing until it runs: the hot loop stays as it was
        try:
            if partition < 0:
                for value in values:
                    try:
                        produce(topic, value)
                    except BufferError:
                        self._send_when_room(value, partition)
            else:
                for value in values:
                    try:
                        produce(topic, value, None, partition)
                    except BufferError:
                        self._send_when_room(value, partition)
        except Exception as error:  # KafkaException: the client refused this record
            rejected = error if isinstance(error, RecordRejected) else self._rejected(
                error, value, None)
            rejected.index = next(i for i, v in enumerate(values) if v is value)
            self.report.sent += rejected.index
            raise rejected from None
        self.report.sent += len(values)
        self._serve()  # once per chunk: measurably faster than leaving reports queued
        return len(values)

    def _send_when_room(self, value: bytes, partition: int) -> None:
        while True:
            self._wait_for_room()
            try:
                self._producer.produce(self.topic, value, None, partition)
                return
            except BufferError:
                continue
            except Exception as error:
                raise self._rejected(error, value, None) from None

    def _rejected(self, error: Any, value: bytes | None, key: bytes | None,
                  ) -> RecordRejected:
        """Why the client would not queue a record, as the user should read it. A
        record over message.max.bytes is refused (exit 1), not bad input: the limit
        is the producer's and the topic's setting, not the data's fault."""
        translated = from_kafka_error(error, f"produce to {self.topic}")
        name = error.args[0].name() if getattr(error, "args", None) and hasattr(
            error.args[0], "name") else ""
        if name in ("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE"):
            size = len(value or b"") + len(key or b"")
            translated = OperationFailed(
                f"a record of {size:,} bytes is over the producer's message.max.bytes "
                f"({int(self._max_bytes):,})",
                hint="raise it with -X message.max.bytes=N; the topic's max.message.bytes "
                     "must allow it too")
        return RecordRejected(translated)

    def flush(self) -> ProduceReport:
        """Wait until every queued record is acknowledged or failed."""
        deadline = time.monotonic() + self.timeout
        last = -1
        while True:
            remaining = self._producer.flush(0.1)
            if self.watch.fatal is not None:
                self._producer.purge()
                raise self.watch.fatal
            if remaining == 0:
                return self.report
            if remaining != last:  # progress: the timeout counts from the last ack
                last = remaining
                deadline = time.monotonic() + self.timeout
            elif time.monotonic() >= deadline:
                self._producer.purge()
                self._producer.flush(1.0)
                raise Unreachable(f"{remaining} records to {self.topic} were not acknowledged "
                                  f"within {self.timeout:g}s")
