"""ACLs on a broker with an authorizer, through confluent-kafka's AdminClient, Producer
and Consumer logged in as different users over SASL: what each may see and do, the
errors Kafka answers, and the authorizer's log lines."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kio.schema.describe_acls.v3.request import DescribeAclsRequest

from tests.support.broker import BrokerProcess, free_port
from tests.support.wire import WireClient

pytestmark = pytest.mark.broker

PASSWORDS = {"admin": "admin-Pw-31", "alice": "alice-Pw-27", "bob": "bob-Pw-88"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{user}="{password}"' for user, password in PASSWORDS.items()) + ";")


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    root: Path = tmp_path_factory.mktemp("acls")
    base = free_port(2)
    broker = BrokerProcess(root / "broker", port=base, settings={
        "listeners": f"PLAINTEXT://127.0.0.1:{base},SASL_PLAINTEXT://127.0.0.1:{base + 1}",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",  # ANONYMOUS: PLAINTEXT, the v0 test
    }).start()
    yield broker
    assert broker.stop() == 0, broker.log()
    assert "Traceback" not in broker.log()


@pytest.fixture(scope="module")
def sasl(sasl_broker: BrokerProcess) -> str:
    """The SASL_PLAINTEXT listener (the one after PLAINTEXT)."""
    return f"127.0.0.1:{sasl_broker.port + 1}"


def config(bootstrap: str, user: str, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "sasl_plaintext",
            "sasl.mechanisms": "PLAIN", "sasl.username": user,
            "sasl.password": PASSWORDS[user], "log_level": 0, **extra}


def admin_of(bootstrap: str, user: str) -> AdminClient:
    return AdminClient(config(bootstrap, user))


def allow(kind: ResourceType, name: str, user: str, operation: AclOperation,
          pattern: ResourcePatternType = ResourcePatternType.LITERAL,
          permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{user}", "*", operation, permission)


def create(bootstrap: str, *bindings: AclBinding) -> None:
    admin = admin_of(bootstrap, "admin")
    for future in admin.create_acls(list(bindings)).values():
        future.result(10)


def topics(bootstrap: str, *names: str) -> None:
    admin = admin_of(bootstrap, "admin")  # a super user
    for future in admin.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        future.result(10)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def produce_error(bootstrap: str, user: str, topic: str) -> KafkaError | None:
    errors: list[KafkaError | None] = []
    producer = Producer(config(bootstrap, user, **{"message.timeout.ms": 5000}))
    producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    return errors[0] if errors else None


def test_read_a_but_not_b(sasl: str, sasl_broker: BrokerProcess) -> None:
    a, b = unique("a-"), unique("b-")
    topics(sasl, a, b)
    create(sasl, allow(ResourceType.TOPIC, a, "alice", AclOperation.READ))
    listed = admin_of(sasl, "alice").list_topics(timeout=10).topics
    assert a in listed
    assert b not in listed  # not describable: left out of all-topics Metadata
    named = admin_of(sasl, "alice").list_topics(b, timeout=10).topics[b]
    assert named.error is not None
    assert named.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert (f"Principal = User:alice is Denied Operation = Describe from host = 127.0.0.1 "
            f"on resource = Topic:{b}") in sasl_broker.log()
    error = produce_error(sasl, "alice", a)  # READ is not WRITE
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def commit_as(bootstrap: str, user: str, group: str, topic: str) -> int:
    """OffsetCommit v8 of offset 1 on partition 0, logged in as ``user``: its error code."""
    from kio.schema.offset_commit.v8.request import (
        OffsetCommitRequest,
        OffsetCommitRequestPartition,
        OffsetCommitRequestTopic,
    )
    from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
    from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

    from kcli.broker.security.plain import plain_token

    with WireClient(bootstrap) as wire:
        wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        assert wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token(user, PASSWORDS[user]))).error_code == 0
        answer = wire.request(8, 8, OffsetCommitRequest(
            group_id=group, generation_id_or_member_epoch=-1, member_id="",
            group_instance_id=None, topics=(OffsetCommitRequestTopic(
                name=topic, partitions=(OffsetCommitRequestPartition(
                    partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                    committed_metadata=None),)),)))
    return int(answer.topics[0].partitions[0].error_code)


def test_write_then_read_needs_a_group_acl_to_commit(sasl: str) -> None:
    topic, group = unique("t-"), unique("g-")
    topics(sasl, topic)
    create(sasl, allow(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE),
           allow(ResourceType.TOPIC, topic, "bob", AclOperation.READ))
    assert produce_error(sasl, "bob", topic) is None
    consumer = Consumer(config(sasl, "bob", **{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        records, errors = [], []
        deadline = time.monotonic() + 15
        while not (records and errors) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                (errors if message.error() else records).append(message)
        assert records, "bob may read the topic"
        # without a group ACL the group's coordinator is not even found
        assert [e.error().code() for e in errors] == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    finally:
        consumer.close()
    assert commit_as(sasl, "bob", group, topic) == KafkaError.GROUP_AUTHORIZATION_FAILED
    create(sasl, allow(ResourceType.GROUP, group, "bob", AclOperation.READ))
    assert commit_as(sasl, "bob", group, topic) == 0
    assert commit_as(sasl, "alice", group, topic) == KafkaError.GROUP_AUTHORIZATION_FAILED
    # a client, from scratch, now commits through its group
    consumer = Consumer(config(sasl, "bob", **{"group.id": group, "enable.auto.commit": False}))
    try:
        committed = consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        assert committed is not None
        assert committed[0].error is None
    finally:
        consumer.close()


def test_deny_beats_allow_and_prefixed_acls(sasl: str) -> None:
    prefix = unique("orders-")
    eu, us = f"{prefix}eu", f"{prefix}us"
    topics(sasl, eu, us)
    create(sasl,
           allow(ResourceType.TOPIC, prefix, "alice", AclOperation.WRITE,
                 ResourcePatternType.PREFIXED),
           allow(ResourceType.TOPIC, us, "alice", AclOperation.WRITE,
                 permission=AclPermissionType.DENY))
    assert produce_error(sasl, "alice", eu) is None
    error = produce_error(sasl, "alice", us)
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_super_user_bypasses_and_others_cannot_manage(sasl: str) -> None:
    topic = unique("s-")
    topics(sasl, topic)  # admin, with no ACL at all
    assert produce_error(sasl, "admin", topic) is None
    bob = admin_of(sasl, "bob")
    binding = allow(ResourceType.TOPIC, topic, "bob", AclOperation.ALL)
    refused = bob.create_acls([binding])[binding]
    with pytest.raises(KafkaException, match=r"CLUSTER_AUTHORIZATION_FAILED|Authorization"):
        refused.result(10)
    deleting = bob.delete_topics([topic])[topic]
    with pytest.raises(KafkaException, match=r"TOPIC_AUTHORIZATION_FAILED|Authorization"):
        deleting.result(10)


def test_describe_and_delete_acls(sasl: str) -> None:
    topic = unique("d-")
    create(sasl, allow(ResourceType.TOPIC, topic, "alice", AclOperation.READ),
           allow(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE))
    admin = admin_of(sasl, "admin")
    every_on_topic = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY,
                                      None, None, AclOperation.ANY, AclPermissionType.ANY)
    found = admin.describe_acls(every_on_topic).result(10)
    assert sorted(b.principal for b in found) == ["User:alice", "User:bob"]
    bobs = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, "User:bob",
                            None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([bobs])[bobs].result(10)
    assert [b.principal for b in deleted] == ["User:bob"]
    assert [b.principal for b in admin.describe_acls(every_on_topic).result(10)] == [
        "User:alice"]


def test_without_an_authorizer_acl_apis_say_security_disabled(broker: BrokerProcess) -> None:
    with WireClient(broker.bootstrap) as wire:  # librdkafka shows this one as no ACLs
        answer = wire.request(29, 3, DescribeAclsRequest(
            resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1,
            principal_filter=None, host_filter=None, operation=1, permission_type=1))
    assert answer.error_code == 54  # SECURITY_DISABLED
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = allow(ResourceType.TOPIC, "t", "bob", AclOperation.READ)
    created = admin.create_acls([binding])[binding]
    with pytest.raises(KafkaException, match=r"SECURITY_DISABLED|No Authorizer"):
        created.result(10)


def test_authorized_operations(sasl: str) -> None:
    from confluent_kafka import TopicCollection

    topic = unique("ops-")
    topics(sasl, topic)
    create(sasl, allow(ResourceType.TOPIC, topic, "alice", AclOperation.READ))
    alice = admin_of(sasl, "alice")
    described = alice.describe_topics(TopicCollection([topic]),
                                      include_authorized_operations=True)[topic].result(10)
    assert sorted(op.name for op in described.authorized_operations) == ["DESCRIBE", "READ"]
    cluster = alice.describe_cluster(include_authorized_operations=True).result(10)
    assert not cluster.authorized_operations  # alice has no cluster ACL
    admin = admin_of(sasl, "admin")  # kept: the future needs its client
    everything = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert "ALTER" in {op.name for op in everything.authorized_operations}  # a super user


def test_acl_apis_v0_for_clients_before_kafka_2(sasl: str,
                                                 sasl_broker: BrokerProcess) -> None:
    # kafka-python told the broker is Kafka 1.0 sends Create/Describe/DeleteAcls v0,
    # which know no pattern type: LITERAL both ways, PREFIXED ACLs not shown to them.
    # (On PLAINTEXT, User:ANONYMOUS is a super user of this module's broker.)
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as OldType

    topic = unique("old-")
    create(sasl, allow(ResourceType.TOPIC, topic[:5], "carol", AclOperation.READ,
                       ResourcePatternType.PREFIXED))
    admin = KafkaAdminClient(bootstrap_servers=sasl_broker.bootstrap, api_version=(1, 0, 0))
    try:
        acl = ACL("User:carol", "*", ACLOperation.WRITE, ACLPermissionType.ALLOW,
                  ResourcePattern(OldType.TOPIC, topic, ACLResourcePatternType.LITERAL))
        assert not admin.create_acls([acl])["failed"]
        wanted = ACLFilter("User:carol", None, ACLOperation.ANY, ACLPermissionType.ANY,
                           ResourcePatternFilter(OldType.TOPIC, None,
                                                 ACLResourcePatternType.LITERAL))
        found, error = admin.describe_acls(wanted)
        assert error.errno == 0
        assert [(a.resource_pattern.resource_name, a.operation) for a in found] == [
            (topic, ACLOperation.WRITE)]  # the PREFIXED one is not for v0 clients
        deleted = admin.delete_acls([wanted])
        assert [a.resource_pattern.resource_name for a in deleted[0][1]] == [topic]
    finally:
        admin.close()
    modern = admin_of(sasl, "admin")
    left = modern.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, None, ResourcePatternType.ANY, "User:carol", None,
        AclOperation.ANY, AclPermissionType.ANY)).result(10)
    assert [(b.name, b.resource_pattern_type) for b in left] == [
        (topic[:5], ResourcePatternType.PREFIXED)]


def test_transactional_ids_need_their_acls(sasl: str, sasl_broker: BrokerProcess) -> None:
    """A transactional producer needs WRITE on its transactional id (and DESCRIBE to find
    its coordinator), as Kafka checks; `txn list` shows only the ids one may describe."""
    topic, txn_id = unique("txn-"), unique("tx-")
    topics(sasl, topic)
    create(sasl, allow(ResourceType.TOPIC, topic, "alice", AclOperation.WRITE),
           allow(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE))
    refused = Producer(config(sasl, "bob", **{"transactional.id": txn_id}))
    with pytest.raises(KafkaException) as raised:
        refused.init_transactions(10)
    assert raised.value.args[0].name() == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    create(sasl, allow(ResourceType.TRANSACTIONAL_ID, txn_id, "alice", AclOperation.WRITE))
    producer = Producer(config(sasl, "alice", **{"transactional.id": txn_id}))
    producer.init_transactions(10)
    producer.begin_transaction()
    producer.produce(topic, b"in a transaction")
    producer.commit_transaction(10)
    assert ("Principal = User:bob is Denied Operation = Describe from host = 127.0.0.1 on "
            f"resource = TransactionalId:{txn_id}") in sasl_broker.log()
