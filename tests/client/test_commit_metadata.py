"""Committed-offset metadata that is not UTF-8 does not break group listings."""

from __future__ import annotations

from types import SimpleNamespace

from kcli.client.groups import commit_metadata


class _Undecodable:
    """A TopicPartition whose metadata bytes are not UTF-8, as confluent-kafka has it:
    its ``metadata`` property raises when read."""

    @property
    def metadata(self) -> str:
        return b"\xc0\x80".decode("utf-8")


def test_metadata_that_is_not_utf8_reads_as_none() -> None:
    assert commit_metadata(_Undecodable()) is None
    assert commit_metadata(SimpleNamespace(metadata="kept")) == "kept"
    assert commit_metadata(SimpleNamespace(metadata=None)) is None
