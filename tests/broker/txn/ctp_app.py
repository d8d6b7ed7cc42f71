"""A consume-transform-produce application with exactly-once semantics, as users write
one with confluent-kafka: read_committed consumer, transactional producer, offsets sent
to each transaction. Run as a process so tests can SIGKILL it mid-transaction.

    python -m tests.broker.txn.ctp_app BOOTSTRAP INPUT OUTPUT GROUP

Uppercases each value into OUTPUT. Exits 0 once INPUT has been idle for IDLE_S.
"""

from __future__ import annotations

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

IDLE_S = 1.5
BATCH = 50
WORK_S = 0.01


def main(bootstrap: str, source: str, sink: str, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "group.instance.id": f"{group}-instance",  # a restart takes over
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "log_level": 0})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{group}-app",
                         "log_level": 0})
    producer.init_transactions(30)  # fences an earlier instance, aborting its transaction
    consumer.subscribe([source])
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < IDLE_S:
            messages = [m for m in consumer.consume(BATCH, 0.5) if m.error() is None]
            if not messages:
                continue
            idle_since = time.monotonic()
            producer.begin_transaction()
            for message in messages:
                producer.produce(sink, (message.value() or b"").upper(), key=message.key(),
                                 partition=message.partition())
            time.sleep(WORK_S)  # the transform's work: a kill often lands in the middle
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
    except KafkaException as error:
        print(f"ctp_app: {error}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
