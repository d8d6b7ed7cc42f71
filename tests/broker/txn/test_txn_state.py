"""The transaction state that is stored: Kafka's TransactionLog records (round trip,
and malformed bytes always a RecordFormatError), the state machine, markers, and a
partition's open and aborted transactions with their .txnindex files (kept, pruned,
rebuilt, and damaged files never fatal)."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.log import iter_batches
from kcli.broker.txn.markers import encode_marker, read_marker
from kcli.broker.txn.metadata import InvalidTransition, TransactionMetadata, TxnState
from kcli.broker.txn.partition_txns import PartitionTxns
from kcli.broker.txn.records import (
    RecordFormatError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)

names = st.text(min_size=1, max_size=30)
partitions = st.sets(st.tuples(names, st.integers(0, 1000)), max_size=8)


@st.composite
def metadata(draw: st.DrawFn) -> TransactionMetadata:
    state = draw(st.sampled_from([s for s in TxnState if s is not TxnState.PREPARE_EPOCH_FENCE]))
    parts = draw(partitions) if state is not TxnState.EMPTY else set()
    return TransactionMetadata(
        draw(names), draw(st.integers(0, 2**63 - 1)), draw(st.integers(-1, 32767)),
        draw(st.integers(1, 2**31 - 1)), state, parts, draw(st.integers(-1, 2**62)),
        draw(st.integers(-1, 2**62)))


@given(metadata())
def test_records_round_trip(meta: TransactionMetadata) -> None:
    assert decode_key(encode_key(meta.transactional_id)) == meta.transactional_id
    back = decode_value(meta.transactional_id, encode_value(meta))
    assert (back.producer_id, back.producer_epoch, back.timeout_ms, back.state,
            back.partitions, back.start_ms, back.update_ms) == (
        meta.producer_id, meta.producer_epoch, meta.timeout_ms, meta.state,
        meta.partitions, meta.start_ms, meta.update_ms)


@given(metadata(), st.data())
def test_damaged_values_raise_format_errors(meta: TransactionMetadata, data: st.DataObject
                                            ) -> None:
    value = bytearray(encode_value(meta))
    cut = data.draw(st.integers(0, len(value) - 1))
    with pytest.raises(RecordFormatError):
        decode_value("x", bytes(value[:cut]))
    position = data.draw(st.integers(0, len(value) - 1))
    value[position] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(RecordFormatError):
        decode_value("x", bytes(value))


@given(st.binary(max_size=200))
def test_noise_is_never_more_than_a_format_error(noise: bytes) -> None:
    for decode in (lambda: decode_key(noise), lambda: decode_value("x", noise)):
        with contextlib.suppress(RecordFormatError):
            decode()


def test_state_machine_follows_kafka() -> None:
    meta = TransactionMetadata("t", 1, 0, 60000)
    ongoing = meta.transition(TxnState.ONGOING, partitions={("a", 0)})
    with pytest.raises(InvalidTransition):
        meta.transition(TxnState.PREPARE_COMMIT)  # nothing open to commit
    prepared = ongoing.transition(TxnState.PREPARE_COMMIT)
    with pytest.raises(InvalidTransition):
        prepared.transition(TxnState.COMPLETE_ABORT)
    assert prepared.transition(TxnState.COMPLETE_COMMIT).is_complete
    assert TxnState.by_name("PrepareAbort") is TxnState.PREPARE_ABORT
    assert TxnState.PREPARE_EPOCH_FENCE.display == "PrepareEpochFence"


@pytest.mark.parametrize("commit", [True, False])
def test_markers_carry_kafkas_control_record(commit: bool) -> None:
    batch = encode_marker(7, 3, commit=commit, coordinator_epoch=5, timestamp=1)
    header = next(iter_batches(batch))
    assert header.is_control
    assert header.is_transactional
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, -1)
    marker = read_marker(batch, header)
    assert marker is not None
    assert (marker.commit, marker.coordinator_epoch) == (commit, 5)


def test_open_and_aborted_transactions(tmp_path: Path) -> None:
    txns = PartitionTxns(tmp_path)
    txns.on_data(1, 10)
    txns.on_data(1, 12)  # the same transaction: it began at 10
    txns.on_data(2, 11)
    assert txns.first_unstable_offset(high_watermark=20) == 10
    txns.on_marker(1, False, 0, 13, 10, segment_base=0)
    assert txns.first_unstable_offset(high_watermark=13) == 10  # marker not replicated
    assert txns.first_unstable_offset(high_watermark=14) == 11
    txns.on_marker(2, True, 0, 14, 11, segment_base=0)
    assert txns.first_unstable_offset(high_watermark=15) is None
    assert txns.aborted_in(0, 100) == [(1, 10)]
    assert txns.aborted_in(14, 100) == []  # it ended before the read starts
    assert txns.aborted_in(0, 10) == []  # and begins where the read stops
    assert (tmp_path / f"{0:020d}.txnindex").stat().st_size == 34
    txns.save(log_end_offset=15)
    loaded = PartitionTxns.load(tmp_path, 0, 15)
    assert loaded is not None
    assert loaded.aborted == txns.aborted
    assert PartitionTxns.load(tmp_path, 0, 16) is None  # the log grew since: rebuild
    txns.forget_before(14)
    assert txns.aborted == []
    assert not list(tmp_path.glob("*.txnindex"))


def test_damaged_index_files_are_read_as_far_as_they_go(tmp_path: Path) -> None:
    entry = struct.pack(">hqqqq", 0, 1, 10, 13, 10)
    (tmp_path / f"{0:020d}.txnindex").write_bytes(entry + struct.pack(">hqqqq", 9, 2, 3, 4, 5)
                                                  + entry[:20])
    PartitionTxns(tmp_path).save(log_end_offset=20)
    loaded = PartitionTxns.load(tmp_path, 0, 20)
    assert loaded is not None
    assert loaded.aborted_in(0, 20) == [(1, 10)]
    (tmp_path / "transaction-state.json").write_text("{not json")
    assert PartitionTxns.load(tmp_path, 0, 20) is None  # rebuilt from the log instead
