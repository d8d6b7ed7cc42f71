"""`kcli consume --isolation` and `kcli txn`: list, describe, producers, abort and
find-hanging against the session broker, with confluent-kafka's transactional producer
making the transactions and a raw Produce making a hanging one."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from kcli.broker.log import encode_batch
from kcli.broker.log.records import Record
from kcli.broker.protocol.versions import ApiKey
from tests.broker.groups.test_wire import body
from tests.cli.conftest import Kcli, Run
from tests.support.broker import BrokerProcess
from tests.support.wire import WireClient


def transactional(bootstrap: str) -> tuple[Producer, str]:
    transactional_id = f"cli-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(10)
    return producer, transactional_id


def test_consume_isolation(kcli: Kcli, topic_name: str, bootstrap: str) -> None:
    kcli("topic", "create", topic_name, "-P", "1").ok()
    producer, _ = transactional(bootstrap)
    producer.begin_transaction()
    producer.produce(topic_name, b"committed")
    producer.commit_transaction(10)
    producer.begin_transaction()
    producer.produce(topic_name, b"aborted")
    producer.flush(10)
    producer.abort_transaction(10)
    assert kcli("consume", topic_name).ok().text.split() == ["committed"]
    assert kcli("consume", topic_name, "--isolation", "read_committed").ok().text.split() == [
        "committed"]
    assert kcli("consume", topic_name, "--isolation", "read_uncommitted").ok().text.split() == [
        "committed", "aborted"]
    kcli("consume", topic_name, "--isolation", "committed").fails(
        2, "--isolation: 'committed' is not one of read_committed, read_uncommitted")
    assert "read_committed" in kcli("consume", "--help").ok().text


def test_txn_list_describe_and_producers(kcli: Kcli, topic_name: str, bootstrap: str) -> None:
    kcli("topic", "create", topic_name, "-P", "2").ok()
    producer, transactional_id = transactional(bootstrap)
    producer.begin_transaction()
    producer.produce(topic_name, b"x", partition=1)
    producer.flush(10)

    listed = json.loads(kcli("txn", "list", "-o", "json").ok().text)
    mine = [t for t in listed if t["transactional_id"] == transactional_id]
    assert len(mine) == 1
    assert mine[0]["state"] == "Ongoing"
    ongoing = kcli("txn", "list", "--state", "Ongoing").ok().text
    assert transactional_id in ongoing
    assert transactional_id not in kcli("txn", "list", "--state", "CompleteCommit").ok().text
    kcli("txn", "list", "--state", "Running").fails(2, "--state: 'Running' is not one of")

    described = json.loads(kcli("txn", "describe", transactional_id, "-o", "json").ok().text)
    assert described["state"] == "Ongoing"
    assert described["partitions"] == [{"topic": topic_name, "partition": 1}]
    assert described["timeout_ms"] == 60000
    assert described["start_ms"] > 0
    table = kcli("txn", "describe", transactional_id, "-o", "table").ok().text
    assert f"{topic_name}-1" in table
    assert "Ongoing" in table

    producers = json.loads(kcli("txn", "producers", topic_name, "-o", "json").ok().text)
    assert [(p["partition"], p["txn_start_offset"]) for p in producers] == [(1, 0)]
    producer.commit_transaction(10)
    assert json.loads(kcli("txn", "describe", transactional_id, "-o", "json").ok().text)[
        "state"] == "CompleteCommit"
    producers = json.loads(kcli("txn", "producers", topic_name, "-P", "1", "-o", "json"
                                ).ok().text)
    assert producers[0]["txn_start_offset"] == -1
    kcli("txn", "describe", "no-such-id").fails(4, "TRANSACTIONAL_ID_NOT_FOUND")
    kcli("txn", "producers", f"{topic_name}-missing").fails(4, "does not exist")


def stray_write(bootstrap: str, topic: str, version: int = 9) -> tuple[int, int]:
    """A transactional batch sent to a partition its coordinator was never told of (no
    AddPartitionsToTxn), as a late retry or a client bug sends one: (producer id, the
    error the broker answered)."""
    transactional_id = f"lost-{uuid.uuid4().hex[:6]}"
    with WireClient(bootstrap) as wire:
        init = wire.request(ApiKey.INIT_PRODUCER_ID, 4, body(
            ApiKey.INIT_PRODUCER_ID, 4, transactional_id=transactional_id,
            transaction_timeout=60000, producer_id=-1, producer_epoch=-1))
        producer_id = int(init.producer_id)
        now = int(time.time() * 1000)
        batch = encode_batch([Record(0, now, None, b"stuck")], producer_id=producer_id,
                             producer_epoch=int(init.producer_epoch), base_sequence=0,
                             is_transactional=True)
        partition = body(ApiKey.PRODUCE, version, "PartitionProduceData", index=0,
                         records=batch)
        request = body(ApiKey.PRODUCE, version, transactional_id=transactional_id, acks=-1,
                       timeout=5000, topic_data=(body(
                           ApiKey.PRODUCE, version, "TopicProduceData", name=topic,
                           partition_data=(partition,)),))
        answer = wire.request(ApiKey.PRODUCE, version, request)
    return producer_id, int(answer.responses[0].partition_responses[0].error_code)


def test_a_stray_transactional_write_is_refused(kcli: Kcli, topic_name: str,
                                                bootstrap: str) -> None:
    # KIP-890 verification: the leader asks the coordinator, which never heard of it
    kcli("topic", "create", topic_name, "-P", "1").ok()
    assert stray_write(bootstrap, topic_name, 9)[1] == 48  # INVALID_TXN_STATE
    assert stray_write(bootstrap, topic_name, 11)[1] == 120  # TRANSACTION_ABORTABLE
    assert kcli("consume", topic_name, "--isolation", "read_uncommitted").ok().text == ""


def test_find_hanging_and_abort(run_kcli: Kcli, make_broker: Callable[..., BrokerProcess],
                                topic_name: str) -> None:
    # a broker without KIP-890 verification, as before Kafka 3.6: a stray write hangs
    broker = make_broker("unverified", settings={
        "transaction.partition.verification.enable": "false"}).start()
    bootstrap = broker.bootstrap

    def kcli(*args: str, **kwargs: Any) -> Run:
        return run_kcli("-b", bootstrap, *args, **kwargs)

    kcli("topic", "create", topic_name, "-P", "1").ok()
    producer, transactional_id = transactional(bootstrap)
    producer.begin_transaction()  # open, and known to its coordinator: not hanging
    producer.produce(topic_name, b"live")
    producer.flush(10)
    stuck, error = stray_write(bootstrap, topic_name)
    assert error == 0
    found = json.loads(kcli("txn", "find-hanging", "-t", topic_name,
                            "--max-transaction-timeout", "0", "-o", "json").ok().text)
    assert [(h["producer_id"], h["txn_start_offset"]) for h in found] == [(stuck, 1)]
    assert "(no hanging transactions)" in kcli("txn", "find-hanging", "-t", topic_name,
                                              "-o", "table").ok().text
    kcli("txn", "abort", topic_name, "-P", "0").fails(2, "give --start-offset or --producer-id")
    kcli("txn", "abort", topic_name, "--start-offset", "7").fails(
        4, r"has no open transaction starting at offset 7 \(open: 0, 1\)")
    done = kcli("txn", "abort", topic_name, "--start-offset", "1").ok()
    assert f"aborted the transaction of producer {stuck}" in done.err
    assert json.loads(kcli("txn", "find-hanging", "-t", topic_name,
                           "--max-transaction-timeout", "0", "-o", "json").ok().text) == []
    producer.commit_transaction(10)
    assert kcli("consume", topic_name).ok().text.split() == ["live"]
    assert transactional_id in kcli("txn", "list").ok().text


