"""server.properties parsing: what Java's Properties.load reads from the same text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.properties import PropertiesError, format_properties, parse_properties

TEXT = r"""
# a comment
! another
listeners=PLAINTEXT://:9092,SASL_SSL://:9093
log.retention.ms : 1000
num.partitions 3
listener.name.sasl_ssl.plain.sasl.jaas.config=\
    org.apache.kafka.common.security.plain.PlainLoginModule required \
    username="admin" \
    password="a\\b" user_admin="a\\b";
key\=with\:separators = v
unicode = caf\u00e9\tend
empty=
num.partitions=4
"""


def test_server_properties() -> None:
    assert parse_properties(TEXT) == {
        "listeners": "PLAINTEXT://:9092,SASL_SSL://:9093",
        "log.retention.ms": "1000",
        "num.partitions": "4",  # the later one wins
        "listener.name.sasl_ssl.plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="admin" password="a\\b" user_admin="a\\b";',
        "key=with:separators": "v",
        "unicode": "café\tend",
        "empty": "",
    }


def test_a_line_without_a_key() -> None:
    with pytest.raises(PropertiesError, match="line 2: no key"):
        parse_properties("a=1\n=secret\n")


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=8))
def test_format_then_parse(settings: dict[str, str]) -> None:
    assert parse_properties(format_properties(settings)) == settings
