"""The broker's on-disk log: Kafka's segment layout, record batches stored as on the wire."""

from kcli.broker.log.batch import (
    BatchHeader,
    iter_batches,
    read_header,
    stamp_batch,
    validate_client_batch,
)
from kcli.broker.log.errors import (
    BatchError,
    CorruptBatch,
    InvalidBatch,
    LogError,
    MessageTooLarge,
    OffsetOutOfRange,
    UnsupportedMagic,
)
from kcli.broker.log.log import AppendInfo, LogConfig, PartitionLog, SegmentInfo
from kcli.broker.log.records import Record, decode_records, encode_batch

__all__ = [
    "AppendInfo",
    "BatchError",
    "BatchHeader",
    "CorruptBatch",
    "InvalidBatch",
    "LogConfig",
    "LogError",
    "MessageTooLarge",
    "OffsetOutOfRange",
    "PartitionLog",
    "Record",
    "SegmentInfo",
    "UnsupportedMagic",
    "decode_records",
    "encode_batch",
    "iter_batches",
    "read_header",
    "stamp_batch",
    "validate_client_batch",
]
