"""`kcli migrate` to a smaller cluster: the replication factor is not cut silently."""

from __future__ import annotations

import subprocess
import uuid

from confluent_kafka import Producer

from tests.cluster.conftest import MakeCluster
from tests.support.broker import kcli_command, kcli_env


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kcli_command(*args), capture_output=True, text=True, timeout=120,
                          env=kcli_env(), check=False, stdin=subprocess.DEVNULL)


def test_replication_factor_is_warned_about_or_chosen(make_cluster: MakeCluster) -> None:
    source, target = make_cluster(3).start(), make_cluster(1).start()
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    source.create_topic(topic, partitions=2, replication=3)
    producer = Producer({"bootstrap.servers": source.bootstrap})
    for i in range(10):
        producer.produce(topic, b"%d" % i)
    assert producer.flush(10) == 0

    capped = run("migrate", "--from", source.bootstrap, "--to", target.bootstrap, topic,
                 "-o", "json")
    assert capped.returncode == 0, capped.stderr
    assert (f"kcli: warning: {topic}: replication factor 1 (the source has 3, the target "
            "1 broker(s)); choose it with --replication-factor") in capped.stderr

    chosen = run("migrate", "--from", source.bootstrap, "--to", target.bootstrap, topic,
                 "--rename", f"{topic}={topic}-2", "-r", "1")
    assert chosen.returncode == 0, chosen.stderr
    assert "warning" not in chosen.stderr

    refused = run("migrate", "--from", source.bootstrap, "--to", target.bootstrap, topic,
                  "--rename", f"{topic}={topic}-3", "-r", "2")
    assert refused.returncode == 2, refused.stderr
    assert "replication" in refused.stderr.lower(), refused.stderr
