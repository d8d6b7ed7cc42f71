"""Transaction markers: the control batches that commit or abort a transaction on a
partition (Kafka's ``EndTransactionMarker``, ``ControlRecordType``).

A marker is a v2 batch with the transactional and control attributes, the producer's id
and epoch, base sequence -1 and one record whose key is ``i16 version 0, i16 type`` (0
ABORT, 1 COMMIT) and whose value is ``i16 version 0, i32 coordinator epoch``. Clients
compare the whole key (aiokafka), so nothing else may be written there.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from kcli.broker.log import BatchHeader, CorruptBatch, Record, decode_records, encode_batch

ABORT = 0
COMMIT = 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")


class Marker(NamedTuple):
    """What a control batch says."""

    commit: bool
    coordinator_epoch: int


def encode_marker(producer_id: int, producer_epoch: int, *, commit: bool,
                  coordinator_epoch: int, timestamp: int) -> bytes:
    """The control batch that ends ``producer_id``'s transaction on one partition (its
    offset is set by the log it is appended to)."""
    record = Record(0, timestamp, _KEY.pack(0, COMMIT if commit else ABORT),
                    _VALUE.pack(0, coordinator_epoch))
    return encode_batch([record], producer_id=producer_id, producer_epoch=producer_epoch,
                        base_sequence=-1, is_transactional=True, is_control=True)


def read_marker(data: bytes | bytearray | memoryview, header: BatchHeader) -> Marker | None:
    """The marker a control batch holds, or None for a control batch of another kind
    (Kafka's KRaft control records) or one that cannot be read."""
    try:
        records = decode_records(data, header)
    except CorruptBatch:
        return None
    if len(records) != 1 or records[0].key is None or len(records[0].key) < _KEY.size:
        return None
    version, kind = _KEY.unpack_from(records[0].key)
    if version != 0 or kind not in (ABORT, COMMIT):
        return None
    coordinator_epoch = -1
    value = records[0].value
    if value is not None and len(value) >= _VALUE.size:
        coordinator_epoch = _VALUE.unpack_from(value)[1]
    return Marker(kind == COMMIT, coordinator_epoch)
