"""KafkaJS 2.2, the most used Node.js client, in transactions against the broker: it
sends older versions than librdkafka (InitProducerId v1, AddPartitionsToTxn v1, EndTxn
v1, TxnOffsetCommit v1) and starts each transaction the moment the last one ended, which
meets CONCURRENT_TRANSACTIONS on brokers that answer EndTxn before the markers are
written (tulios/kafkajs #1315). Node.js comes from scripts/test (apt nodejs); KafkaJS,
which has no dependencies, from the npm registry, checked against its sha256."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.broker.txn.test_transactions import read

KAFKAJS = "https://registry.npmjs.org/kafkajs/-/kafkajs-2.2.4.tgz"
KAFKAJS_SHA256 = "c814f61afbb2b42e314a5e17780475e6a15aa47bbd33b126b81123e69b02a6f6"
HERE = Path(__file__).parent
CACHE = HERE.parents[2] / ".cache" / "kafkajs-2.2.4"


@pytest.fixture(scope="session")
def kafkajs() -> Path:
    """node_modules holding KafkaJS (downloaded once into .cache/)."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: scripts/test installs it (apt-get install nodejs)")
    package = CACHE / "node_modules" / "kafkajs"
    if not (package / "package.json").exists():
        data = urllib.request.urlopen(KAFKAJS, timeout=60).read()
        assert hashlib.sha256(data).hexdigest() == KAFKAJS_SHA256, "kafkajs tarball changed"
        staging = CACHE / f"staging-{uuid.uuid4().hex[:6]}"
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            archive.extractall(staging, filter="data")
        package.parent.mkdir(parents=True, exist_ok=True)
        (staging / "package").rename(package)
        shutil.rmtree(staging)
    return CACHE / "node_modules"


def test_kafkajs_back_to_back_transactions(kafkajs: Path, bootstrap: str,
                                           topic_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    group = f"js-{topic_name}"
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(HERE / "kafkajs_txn.js"), bootstrap, topic_name,
         f"js-{uuid.uuid4().hex[:8]}", group],
        capture_output=True, text=True, timeout=120, check=False,
        env={"NODE_PATH": str(kafkajs)})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = [f"v{i}" for i in range(20) if i % 5 != 4]
    assert result["committed"] == expected
    assert result["seen"] == expected  # KafkaJS's read_committed consumer
    assert [v.decode() for _, v in read(bootstrap, topic_name, "read_committed")] == expected
    offsets = {o["partition"]: o["offset"] for o in result["offsets"][0]["partitions"]}
    assert offsets == {0: "7"}  # sent in a committed transaction
