"""One transactional id's state, as Kafka's ``TransactionMetadata``: its producer id and
epoch, timeout, state, and the partitions its open transaction wrote to.

The states and which state each may be entered from are Kafka 3.9's
(``TransactionMetadata.scala``). ``PrepareEpochFence`` is never stored: it is the
moment a coordinator bumps an open transaction's epoch before aborting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

MAX_EPOCH = 32767
"""Short.MaxValue: once an epoch reaches MAX_EPOCH - 1 a new producer id is issued."""


class TxnState(IntEnum):
    """Transaction states, numbered as Kafka stores them in ``__transaction_state``."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display(self) -> str:
        """Kafka's name, as DescribeTransactions and ListTransactions answer it."""
        return _NAMES[self]

    @classmethod
    def by_name(cls, name: str) -> TxnState | None:
        """The state Kafka calls ``name`` (ListTransactions' state filters)."""
        return _BY_NAME.get(name)


_NAMES = {
    TxnState.EMPTY: "Empty", TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit", TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit", TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead", TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME = {name: state for state, name in _NAMES.items()}

_COMPLETE = (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)
VALID_PREVIOUS: dict[TxnState, tuple[TxnState, ...]] = {
    TxnState.EMPTY: (TxnState.EMPTY, *_COMPLETE),
    TxnState.ONGOING: (TxnState.ONGOING, TxnState.EMPTY, *_COMPLETE),
    TxnState.PREPARE_COMMIT: (TxnState.ONGOING,),
    TxnState.PREPARE_ABORT: (TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE),
    TxnState.COMPLETE_COMMIT: (TxnState.PREPARE_COMMIT,),
    TxnState.COMPLETE_ABORT: (TxnState.PREPARE_ABORT,),
    TxnState.DEAD: (TxnState.EMPTY, *_COMPLETE),
    TxnState.PREPARE_EPOCH_FENCE: (TxnState.ONGOING,),
}

TopicPartition = tuple[str, int]


class InvalidTransition(Exception):
    """A state change Kafka's coordinator would refuse (a bug, or a corrupt log)."""


@dataclass(slots=True)
class TransactionMetadata:
    """A transactional id's state."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_ms: int = -1
    """When the open transaction began (-1 when none is open)."""
    update_ms: int = -1
    last_producer_epoch: int = -1
    """The epoch before the last bump: a retried InitProducerId (v3+) that names it is
    answered with the current one rather than fenced."""
    pending: bool = False
    """A write of this id's next state is in flight: other requests get
    CONCURRENT_TRANSACTIONS until it lands."""

    @property
    def is_complete(self) -> bool:
        """Empty, or the last transaction fully ended."""
        return self.state in (TxnState.EMPTY, *_COMPLETE)

    @property
    def is_preparing(self) -> bool:
        """Decided, its markers still being written."""
        return self.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    def transition(self, state: TxnState, **changes: object) -> TransactionMetadata:
        """A copy in ``state`` with ``changes``; raises InvalidTransition when Kafka's
        state machine has no such edge."""
        if self.state not in VALID_PREVIOUS[state]:
            raise InvalidTransition(f"{self.transactional_id}: {self.state.display} -> "
                                    f"{state.display}")
        return replace(self, state=state, pending=False, **changes)  # type: ignore[arg-type]

    def apply(self, other: TransactionMetadata) -> None:
        """Take ``other``'s state: its write has landed."""
        for name in ("producer_id", "producer_epoch", "timeout_ms", "state", "start_ms",
                     "update_ms", "last_producer_epoch"):
            setattr(self, name, getattr(other, name))
        self.partitions = set(other.partitions)
        self.pending = False
