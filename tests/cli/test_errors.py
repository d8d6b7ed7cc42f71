"""Kafka errors map to the exit codes a user expects."""

from __future__ import annotations

import subprocess
import sys

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.error import ConsumeError

from kcli.errors import (
    BadInput,
    ExitCode,
    NotFound,
    OperationFailed,
    Unreachable,
    exit_code_for,
    from_kafka_error,
    is_kafka_exception,
)
from tests.support.broker import kcli_env


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


def test_kafka_exceptions_are_known_by_type() -> None:
    class KafkaException(Exception):  # a namesake is not confluent-kafka's
        pass

    assert is_kafka_exception(ConsumeError(KafkaError(KafkaError._TRANSPORT)))
    assert exit_code_for(ConsumeError(KafkaError(KafkaError._TRANSPORT))) == 3
    assert not is_kafka_exception(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert exit_code_for(KafkaException(KafkaError(KafkaError._TRANSPORT))) == 1
    assert not is_kafka_exception(KafkaError(KafkaError._TRANSPORT))


@pytest.mark.system  # a fresh interpreter, to see what it imports
def test_recognising_kafka_errors_imports_no_kafka_client() -> None:
    code = ("import sys, kcli.errors as e\n"
            "assert e.exit_code_for(RuntimeError()) == 1\n"
            "print('confluent_kafka' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=kcli_env(), check=True)
    assert done.stdout.strip() == "False"
