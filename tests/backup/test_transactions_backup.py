"""Backup, restore and migrate of a topic written in transactions: only committed
records are copied, each transaction marker and aborted record is a gap in the archive,
an open transaction's records are left for the next run, and group offsets that point
past markers map to the same records in the copy."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer

from kcli.backup.archive import Archive
from tests.backup.conftest import commit, committed, create_topic, read_all
from tests.cli.conftest import Kcli


def transactional(bootstrap: str) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": f"bk-{uuid.uuid4().hex[:8]}", "log_level": 0})
    producer.init_transactions(10)
    return producer


def in_transaction(producer: Producer, topic: str, values: list[bytes], *, commit: bool
                   ) -> None:
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value, key=value)
    producer.flush(10)
    if commit:
        producer.commit_transaction(10)
    else:
        producer.abort_transaction(10)


def test_committed_records_only_with_markers_as_gaps(kcli: Kcli, bootstrap: str,
                                                     topic_name: str, tmp_path: Path) -> None:
    create_topic(bootstrap, topic_name, 1)
    producer = transactional(bootstrap)
    # a0 b1 COMMIT2 x3 ABORT4 c5 COMMIT6
    in_transaction(producer, topic_name, [b"a", b"b"], commit=True)
    in_transaction(producer, topic_name, [b"x"], commit=False)
    in_transaction(producer, topic_name, [b"c"], commit=True)
    group_at_c, group_at_end = f"g-c-{topic_name}", f"g-end-{topic_name}"
    commit(bootstrap, group_at_c, {(topic_name, 0): (5, None)})
    commit(bootstrap, group_at_end, {(topic_name, 0): (7, None)})
    # and a transaction still open: its record is not stable, so not copied yet
    producer.begin_transaction()
    producer.produce(topic_name, b"open", key=b"open")
    producer.flush(10)

    archive = tmp_path / "archive"
    kcli("backup", topic_name, "--to", str(archive)).ok()
    kcli("backup", "verify", str(archive)).ok()
    partition = Archive.open(archive).manifest.topics[0].partitions[0]
    assert partition.gaps == [(2, 5), (6, 7)]
    assert (partition.start_offset, partition.next_offset) == (0, 7)

    copy = f"{topic_name}-copy"
    kcli("restore", str(archive), "--topic", f"{topic_name}={copy}", "--groups").ok()
    assert [(r.offset, r.value) for r in read_all(bootstrap, copy)] == [
        (0, b"a"), (1, b"b"), (2, b"c")]
    assert committed(bootstrap, group_at_c, copy) == {0: (2, None)}
    assert committed(bootstrap, group_at_end, copy) == {0: (3, None)}

    # the open transaction commits: an incremental run copies it, after the marker gap
    producer.commit_transaction(10)
    kcli("backup", topic_name, "--to", str(archive), "--incremental").ok()
    partition = Archive.open(archive).manifest.topics[0].partitions[0]
    assert partition.gaps == [(2, 5), (6, 7), (8, 9)]
    assert partition.next_offset == 9

    # migrate too copies committed records only, with the same offset map
    migrated = f"{topic_name}-migrated"
    done = kcli("migrate", topic_name, "--to", bootstrap, "--rename",
                f"{topic_name}={migrated}", "-o", "json").ok()
    assert orjson.loads(done.out)
    assert [r.value for r in read_all(bootstrap, migrated)] == [b"a", b"b", b"c", b"open"]
