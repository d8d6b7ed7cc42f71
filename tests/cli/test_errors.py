"""Kafka errors map to the exit codes a user expects."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from kcli.errors import (
    BadInput,
    ExitCode,
    NotFound,
    OperationFailed,
    Unreachable,
    exit_code_for,
    from_kafka_error,
)


@pytest.mark.parametrize(("code", "cls"), [
    (KafkaError._TRANSPORT, Unreachable), (KafkaError._ALL_BROKERS_DOWN, Unreachable),
    (KafkaError._TIMED_OUT, Unreachable), (KafkaError.UNKNOWN_TOPIC_OR_PART, NotFound),
    (KafkaError.GROUP_ID_NOT_FOUND, NotFound), (KafkaError.INVALID_PARTITIONS, BadInput),
    (KafkaError.INVALID_REPLICATION_FACTOR, BadInput), (KafkaError.INVALID_CONFIG, BadInput),
    (KafkaError.TOPIC_ALREADY_EXISTS, OperationFailed),
    (KafkaError.NON_EMPTY_GROUP, OperationFailed),
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, OperationFailed),
])
def test_mapping(code: int, cls: type) -> None:
    error = from_kafka_error(KafkaException(KafkaError(code, "broker said so")), "create t")
    assert type(error) is cls
    assert error.message == "create t: broker said so"


def test_exit_codes() -> None:
    assert exit_code_for(NotFound("x")) == ExitCode.NOT_FOUND == 4
    assert exit_code_for(KeyboardInterrupt()) == 130
    assert exit_code_for(KafkaException(KafkaError(KafkaError._TRANSPORT))) == 3
    assert exit_code_for(RuntimeError()) == 1
    assert BadInput("a\nb", hint="c").one_line() == "a b (c)"
