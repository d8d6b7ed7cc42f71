"""Every version of the transaction APIs the broker advertises, on the wire: one whole
transaction (InitProducerId, AddPartitionsToTxn, Produce, AddOffsetsToTxn,
TxnOffsetCommit, EndTxn) per version, the error answers Kafka gives (a fenced producer
is PRODUCER_FENCED from v2/v4 on, INVALID_PRODUCER_EPOCH before; ending no transaction is
INVALID_TXN_STATE), and DescribeTransactions and ListTransactions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from kcli.broker.log import encode_batch
from kcli.broker.log.records import Record
from kcli.broker.protocol.versions import SUPPORTED_VERSIONS, ApiKey
from tests.broker.groups.test_wire import body
from tests.support.wire import WireClient

NONE, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, PRODUCER_FENCED = 0, 47, 48, 90
CONCURRENT_TRANSACTIONS, INVALID_TRANSACTION_TIMEOUT = 51, 50


@pytest.fixture
def wire(bootstrap: str) -> Any:
    with WireClient(bootstrap) as client:
        yield client


@pytest.fixture
def kcli_topic(bootstrap: str, topic_name: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    return topic_name


def init(wire: WireClient, version: int, transactional_id: str) -> tuple[int, int]:
    while True:
        answer = wire.request(ApiKey.INIT_PRODUCER_ID, version, body(
            ApiKey.INIT_PRODUCER_ID, version, transactional_id=transactional_id,
            transaction_timeout=60000, producer_id=-1, producer_epoch=-1))
        if int(answer.error_code) != CONCURRENT_TRANSACTIONS:
            break
        time.sleep(0.05)
    assert int(answer.error_code) == NONE
    return int(answer.producer_id), int(answer.producer_epoch)


def add_partition(wire: WireClient, version: int, transactional_id: str, producer: tuple[
        int, int], topic: str) -> int:
    request = body(ApiKey.ADD_PARTITIONS_TO_TXN, version,
                   v3_and_below_transactional_id=transactional_id,
                   v3_and_below_producer_id=producer[0], v3_and_below_producer_epoch=producer[1],
                   v3_and_below_topics=(body(ApiKey.ADD_PARTITIONS_TO_TXN, version,
                                             "AddPartitionsToTxnTopic", name=topic,
                                             partitions=(0,)),))
    answer = wire.request(ApiKey.ADD_PARTITIONS_TO_TXN, version, request)
    return int(answer.results_by_topic_v3_and_below[0].results_by_partition[0]
               .partition_error_code)


def end(wire: WireClient, version: int, transactional_id: str, producer: tuple[int, int],
        commit: bool) -> int:
    answer = wire.request(ApiKey.END_TXN, version, body(
        ApiKey.END_TXN, version, transactional_id=transactional_id, producer_id=producer[0],
        producer_epoch=producer[1], committed=commit))
    return int(answer.error_code)


def produce(wire: WireClient, transactional_id: str, producer: tuple[int, int], topic: str,
            sequence: int) -> int:
    batch = encode_batch([Record(0, int(time.time() * 1000), None, b"v")],
                         producer_id=producer[0], producer_epoch=producer[1],
                         base_sequence=sequence, is_transactional=True)
    partition = body(ApiKey.PRODUCE, 9, "PartitionProduceData", index=0, records=batch)
    answer = wire.request(ApiKey.PRODUCE, 9, body(
        ApiKey.PRODUCE, 9, transactional_id=transactional_id, acks=-1, timeout=5000,
        topic_data=(body(ApiKey.PRODUCE, 9, "TopicProduceData", name=topic,
                         partition_data=(partition,)),)))
    return int(answer.responses[0].partition_responses[0].error_code)


def test_a_transaction_at_every_version(wire: WireClient, kcli_topic: str) -> None:
    topic = kcli_topic
    for version in range(0, 4):  # AddPartitionsToTxn v4+ is for brokers
        for end_version in sorted({min(version, 4), 4}):
            transactional_id = f"w-{uuid.uuid4().hex[:8]}"
            init_version = min(version + 2, 5)
            producer = init(wire, init_version, transactional_id)
            assert add_partition(wire, version, transactional_id, producer, topic) == NONE
            assert produce(wire, transactional_id, producer, topic, 0) == NONE
            group = f"g-{transactional_id}"
            offsets_version = min(version, 4)
            added = wire.request(ApiKey.ADD_OFFSETS_TO_TXN, offsets_version, body(
                ApiKey.ADD_OFFSETS_TO_TXN, offsets_version, transactional_id=transactional_id,
                producer_id=producer[0], producer_epoch=producer[1], group_id=group))
            assert int(added.error_code) == NONE
            commit_version = min(version, 4)
            partition = body(ApiKey.TXN_OFFSET_COMMIT, commit_version,
                             "TxnOffsetCommitRequestPartition", partition_index=0,
                             committed_offset=1, committed_leader_epoch=-1,
                             committed_metadata="m")
            committed = wire.request(ApiKey.TXN_OFFSET_COMMIT, commit_version, body(
                ApiKey.TXN_OFFSET_COMMIT, commit_version, transactional_id=transactional_id,
                group_id=group, producer_id=producer[0], producer_epoch=producer[1],
                generation_id=-1, member_id="", group_instance_id=None,
                topics=(body(ApiKey.TXN_OFFSET_COMMIT, commit_version,
                             "TxnOffsetCommitRequestTopic", name=topic,
                             partitions=(partition,)),)))
            assert int(committed.topics[0].partitions[0].error_code) == NONE
            assert end(wire, end_version, transactional_id, producer, True) == NONE
            assert end(wire, end_version, transactional_id, producer, True) == NONE  # a retry
            assert end(wire, end_version, transactional_id, producer, False) == INVALID_TXN_STATE


@pytest.mark.parametrize(("api", "fenced_from"), [
    (ApiKey.INIT_PRODUCER_ID, 4), (ApiKey.ADD_PARTITIONS_TO_TXN, 2), (ApiKey.END_TXN, 2)])
def test_a_fenced_producer_gets_the_error_its_version_knows(
        wire: WireClient, kcli_topic: str, api: ApiKey, fenced_from: int) -> None:
    low, high = SUPPORTED_VERSIONS[api]
    for version in range(max(low, 3 if api == ApiKey.INIT_PRODUCER_ID else low),
                         min(high, 3 if api == ApiKey.ADD_PARTITIONS_TO_TXN else high) + 1):
        transactional_id = f"f-{uuid.uuid4().hex[:8]}"
        old = init(wire, 4, transactional_id)
        init(wire, 4, transactional_id)  # a new instance: the epoch moves on
        if api == ApiKey.INIT_PRODUCER_ID:
            answer = wire.request(api, version, body(
                api, version, transactional_id=transactional_id, transaction_timeout=60000,
                producer_id=old[0], producer_epoch=old[1] - 1))
            error = int(answer.error_code)
        elif api == ApiKey.ADD_PARTITIONS_TO_TXN:
            error = add_partition(wire, version, transactional_id, old, kcli_topic)
        else:
            error = end(wire, version, transactional_id, old, True)
        expected = PRODUCER_FENCED if version >= fenced_from else INVALID_PRODUCER_EPOCH
        assert error == expected, (api.name, version)


def test_bad_timeouts_and_describing(wire: WireClient, kcli_topic: str) -> None:
    answer = wire.request(ApiKey.INIT_PRODUCER_ID, 4, body(
        ApiKey.INIT_PRODUCER_ID, 4, transactional_id="too-long", transaction_timeout=10**9,
        producer_id=-1, producer_epoch=-1))
    assert int(answer.error_code) == INVALID_TRANSACTION_TIMEOUT
    transactional_id = f"d-{uuid.uuid4().hex[:8]}"
    producer = init(wire, 4, transactional_id)
    assert add_partition(wire, 3, transactional_id, producer, kcli_topic) == NONE
    # (an id not found answers start time -1, which kio cannot read: see kcli txn's tests)
    described = wire.request(ApiKey.DESCRIBE_TRANSACTIONS, 0, body(
        ApiKey.DESCRIBE_TRANSACTIONS, 0, transactional_ids=(transactional_id,)))
    (ours,) = described.transaction_states
    assert (ours.transaction_state, int(ours.producer_id)) == ("Ongoing", producer[0])
    assert [(t.topic, tuple(t.partitions)) for t in ours.topics] == [(kcli_topic, (0,))]
    for version in (0, 1):
        listed = wire.request(ApiKey.LIST_TRANSACTIONS, version, body(
            ApiKey.LIST_TRANSACTIONS, version, state_filters=("Ongoing", "Nonsense"),
            producer_id_filters=(producer[0],), duration_filter=0))
        assert [t.transactional_id for t in listed.transaction_states] == [transactional_id]
        assert tuple(listed.unknown_state_filters) == ("Nonsense",)
    assert end(wire, 3, transactional_id, producer, False) == NONE


def test_a_fenced_producers_offsets_are_refused(wire: WireClient, kcli_topic: str) -> None:
    """Offsets a zombie sends after its transaction was aborted by a new instance would
    be held forever (no marker ends them): the epoch the abort wrote refuses them."""
    transactional_id = f"z-{uuid.uuid4().hex[:8]}"
    group = f"g-{transactional_id}"
    old = init(wire, 4, transactional_id)
    added = wire.request(ApiKey.ADD_OFFSETS_TO_TXN, 3, body(
        ApiKey.ADD_OFFSETS_TO_TXN, 3, transactional_id=transactional_id, producer_id=old[0],
        producer_epoch=old[1], group_id=group))
    assert int(added.error_code) == NONE
    init(wire, 4, transactional_id)  # fences the old instance and aborts its transaction

    partition = body(ApiKey.TXN_OFFSET_COMMIT, 3, "TxnOffsetCommitRequestPartition",
                     partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                     committed_metadata=None)
    late = wire.request(ApiKey.TXN_OFFSET_COMMIT, 3, body(
        ApiKey.TXN_OFFSET_COMMIT, 3, transactional_id=transactional_id, group_id=group,
        producer_id=old[0], producer_epoch=old[1], generation_id=-1, member_id="",
        group_instance_id=None, topics=(body(ApiKey.TXN_OFFSET_COMMIT, 3,
                                             "TxnOffsetCommitRequestTopic", name=kcli_topic,
                                             partitions=(partition,)),)))
    assert int(late.topics[0].partitions[0].error_code) == INVALID_PRODUCER_EPOCH
    fetched = wire.request(ApiKey.OFFSET_FETCH, 7, body(
        ApiKey.OFFSET_FETCH, 7, group_id=group, require_stable=True, topics=(body(
            ApiKey.OFFSET_FETCH, 7, "OffsetFetchRequestTopic", name=kcli_topic,
            partition_indexes=(0,)),)))
    assert int(fetched.topics[0].partitions[0].error_code) == NONE  # nothing left pending
