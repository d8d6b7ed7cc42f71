"""Fixtures for cluster tests: clusters of real broker processes, killed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import TestCluster

MakeCluster = Callable[..., TestCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """Factory for test clusters (not started); every broker is killed at the end, and
    the brokers' logs are printed (pytest shows them when the test failed)."""
    made: list[TestCluster] = []

    def factory(size: int = 3, settings: dict[str, str] | None = None) -> TestCluster:
        cluster = TestCluster(tmp_path / f"cluster-{len(made)}", size, settings)
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        cluster.kill_all()
        print(cluster.logs())
