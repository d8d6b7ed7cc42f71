"""Three brokers whose inter-broker listener is SASL_SSL with SCRAM-SHA-512: followers log
in to leaders over TLS, the ISR fills, and a leader's crash loses no acknowledged record
for a client on the secured listener."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tests.cluster.conftest import MakeCluster
from tests.cluster.harness import TestCluster, wait_for
from tests.support.certs import make_certificates

BROKER_PASSWORD = "brokers-Secret-41"
ALICE_PASSWORD = "alice-Secret-17"


def secured_settings(root: Path) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(root)
    scram_jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                  f'username="broker" password="{BROKER_PASSWORD}";')
    return {
        "listeners": "SECURE://127.0.0.1:{port2},PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "SECURE:SASL_SSL,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "SECURE",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.secure.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.secure.scram-sha-512.sasl.jaas.config": scram_jaas,
        "ssl.keystore.location": str(certs.keystore),
        "ssl.truststore.location": str(certs.ca),
        "ca": str(certs.ca),  # not a setting: popped below
    }


@pytest.fixture
def secured(make_cluster: MakeCluster, tmp_path: Path) -> tuple[TestCluster, str]:
    settings = secured_settings(tmp_path / "certs")
    ca = settings.pop("ca")
    cluster = make_cluster(3, settings).start()
    admin = cluster.admin()  # over PLAINTEXT: the brokers' own user comes first
    for user, password in (("broker", BROKER_PASSWORD), ("alice", ALICE_PASSWORD)):
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
            password.encode())])[user].result(10)
    return cluster, ca


def client(cluster: TestCluster, ca: str) -> dict[str, str]:
    return {"bootstrap.servers": ",".join(f"127.0.0.1:{n.port + 1}"
                                          for n in cluster.nodes.values() if n.running),
            "security.protocol": "sasl_ssl", "ssl.ca.location": ca,
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "alice",
            "sasl.password": ALICE_PASSWORD}


def test_replication_and_failover_over_the_secured_listener(
        secured: tuple[TestCluster, str]) -> None:
    cluster, ca = secured
    doc = cluster.metadata_file()
    for node_id, node in cluster.nodes.items():  # brokers find each other on SECURE
        entry = doc["brokers"][str(node_id)]
        assert entry["port"] == node.port + 1
        assert entry["endpoints"]["PLAINTEXT"] == ["127.0.0.1", node.port]
    topic = f"secured-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, partitions=1, replication=3)

    producer = Producer({**client(cluster, ca), "acks": "all", "log_level": 0})
    for i in range(200):
        producer.produce(topic, str(i).encode())
    assert producer.flush(30) == 0
    # acks=all came back, the followers fetched (over SECURE): every replica has it all
    cluster.wait_in_sync(topic, 1, 3)
    leader = cluster.leader(topic, 0)
    cluster.node(leader).kill()
    wait_for(lambda: cluster.leader(topic, 0) not in (-1, leader), 30, "a new leader")

    consumer = Consumer({**client(cluster, ca), "group.id": "g", "log_level": 0,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < 200 and time.monotonic() < deadline:
        for message in consumer.consume(500, 0.5):
            if message.error() is None:
                values.append(message.value())
    consumer.close()
    assert values == [str(i).encode() for i in range(200)]
    for node in cluster.nodes.values():
        assert "SASL login" not in node.log(), node.log()
        assert "Traceback" not in node.log()


def test_a_broker_without_a_login_for_the_secured_listener_does_not_start(
        make_cluster: MakeCluster, tmp_path: Path) -> None:
    settings = secured_settings(tmp_path / "certs")
    settings.pop("ca")
    del settings["listener.name.secure.scram-sha-512.sasl.jaas.config"]
    cluster = make_cluster(1, settings)
    node = cluster.node(1)
    node.spawn()
    assert node.process is not None
    assert node.process.wait(30) != 0
    assert "needs the brokers' username" in node.log()
