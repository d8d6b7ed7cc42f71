"""The broker's on-disk log: Kafka's segment layout, record batches stored as on the wire.

How the broker uses it::

    log = PartitionLog.open(data_dir / f"{topic}-{partition}", LogConfig(...))
    # Produce (v3+): one batch per partition, checked, then stamped and appended in place
    header = validate_client_batch(records, max_message_bytes)   # BatchError -> .error_code
    scan = scan_client_records(records, header, client_decompression_limit(max_message_bytes))
    info = log.append(bytearray(records), leader_epoch=epoch, log_append_time=None)
    # Fetch: whole stored batches, never past the high watermark
    data = log.read(fetch_offset, partition_max_bytes, upper_bound=high_watermark)
    # ListOffsets: log.log_start_offset, log.log_end_offset, log.offset_for_timestamp(ts),
    # log.max_timestamp(); OffsetForLeaderEpoch: log.end_offset_for_epoch(epoch)
    log.flush()   # now and then (a timer), and log.close() on shutdown
    # Retention (a timer, log.retention.check.interval.ms): delete whole closed segments
    log.apply_retention(high_watermark)
    log.remove_deleted_files()   # `*.deleted` files once file.delete.delay.ms has passed
    # Compaction: kcli.broker.log.cleaner (the rounds) and .background (the broker's tasks)
"""

from kcli.broker.log.batch import (
    BatchHeader,
    iter_batches,
    read_header,
    set_max_timestamp,
    stamp_batch,
    validate_client_batch,
)
from kcli.broker.log.config import LogConfig
from kcli.broker.log.errors import (
    BatchError,
    CorruptBatch,
    InvalidBatch,
    LogError,
    LogOffline,
    MessageTooLarge,
    OffsetOutOfRange,
    StorageError,
    UnsupportedMagic,
)
from kcli.broker.log.file_records import FileRecords
from kcli.broker.log.log import AppendInfo, PartitionLog
from kcli.broker.log.records import (
    Record,
    decode_records,
    encode_batch,
    keyless_records,
    timestamp_deltas,
)
from kcli.broker.log.segment import SegmentInfo
from kcli.broker.log.validation import (
    RecordsScan,
    client_decompression_limit,
    scan_client_records,
)

__all__ = [
    "AppendInfo",
    "BatchError",
    "BatchHeader",
    "CorruptBatch",
    "FileRecords",
    "InvalidBatch",
    "LogConfig",
    "LogError",
    "LogOffline",
    "MessageTooLarge",
    "OffsetOutOfRange",
    "PartitionLog",
    "Record",
    "RecordsScan",
    "SegmentInfo",
    "StorageError",
    "UnsupportedMagic",
    "client_decompression_limit",
    "decode_records",
    "encode_batch",
    "iter_batches",
    "keyless_records",
    "read_header",
    "scan_client_records",
    "set_max_timestamp",
    "stamp_batch",
    "timestamp_deltas",
    "validate_client_batch",
]
