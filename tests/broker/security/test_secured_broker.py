"""A broker with PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL and mutual-TLS listeners, used
by confluent-kafka, kcat and raw requests: every protocol and mechanism works, each
listener advertises itself, and every failure is clean on both sides."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.metadata.v12.request import MetadataRequest
from kio.schema.sasl_authenticate.v2.request import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v0.request import SaslHandshakeRequest as HandshakeV0
from kio.schema.sasl_handshake.v1.request import SaslHandshakeRequest

from kcli.broker.security.plain import plain_token
from kcli.broker.security.scram import ScramClient
from tests.support.broker import BrokerProcess, free_port
from tests.support.certs import Certificates, make_certificates
from tests.support.wire import WireClient

pytestmark = pytest.mark.broker

ADMIN_PASSWORD = "admin-Secret-9f3"
ALICE_PASSWORD = "alice-Secret-5c1"
BOB_PASSWORD = "bob-Secret-77a"
SECRETS = (ADMIN_PASSWORD, ALICE_PASSWORD, BOB_PASSWORD)
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{ADMIN_PASSWORD}" user_admin="{ADMIN_PASSWORD}" '
        f'user_alice="{ALICE_PASSWORD}";')


@dataclass
class Secured:
    """The broker, its ports by listener and the certificates."""

    broker: BrokerProcess
    ports: dict[str, int]
    certs: Certificates

    def bootstrap(self, listener: str) -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    def client(self, listener: str, mechanism: str | None = None, user: str = "alice",
               password: str = ALICE_PASSWORD, **extra: Any) -> dict[str, Any]:
        """confluent-kafka settings for one listener."""
        protocol = {"PLAINTEXT": "plaintext", "SASL_PLAINTEXT": "sasl_plaintext",
                    "SSL": "ssl", "SASL_SSL": "sasl_ssl", "MTLS": "ssl",
                    "REAUTH": "sasl_plaintext"}[listener]
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap(listener),
                                  "security.protocol": protocol, "log_level": 0}
        if "ssl" in protocol:
            config["ssl.ca.location"] = str(self.certs.ca)
        if mechanism is not None:
            config.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                           "sasl.password": password})
        config.update(extra)
        return config


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    certs = make_certificates(root)
    base = free_port(6)
    names = ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL", "MTLS", "REAUTH"]
    ports = {name: base + i for i, name in enumerate(names)}
    settings = {
        "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items()),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,"
                                          "SSL:SSL,SASL_SSL:SASL_SSL,MTLS:SSL,"
                                          "REAUTH:SASL_PLAINTEXT",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.reauth.plain.sasl.jaas.config": JAAS,
        "listener.name.reauth.connections.max.reauth.ms": "1500",
        "listener.name.sasl_ssl.connections.max.reauth.ms": "1500",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "ssl.keystore.location": str(certs.keystore),
        "ssl.truststore.location": str(certs.ca),
        "listener.name.mtls.ssl.client.auth": "required",
    }
    broker = BrokerProcess(root / "broker", settings=settings, port=base).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        # one request per mechanism: Kafka's KRaft controller refuses two changes of one
        # user in one request (DUPLICATE_RESOURCE, tested below)
        for mechanism, iterations in ((ScramMechanism.SCRAM_SHA_256, 4096),
                                      (ScramMechanism.SCRAM_SHA_512, 8192)):
            admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
                "bob", ScramCredentialInfo(mechanism, iterations), BOB_PASSWORD.encode()),
            ])["bob"].result(10)
    except BaseException:
        broker.kill()
        raise
    yield Secured(broker, ports, certs)
    assert broker.stop() == 0, broker.log()


def round_trip(config: dict[str, Any], topic: str) -> bytes:
    """Produce one record and read it back with a group, over ``config``."""
    value = uuid.uuid4().hex.encode()
    producer = Producer(config)
    producer.produce(topic, value)
    assert producer.flush(15) == 0
    consumer = Consumer({**config, "group.id": f"g-{value.decode()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error() and message.value() == value:
                return value
    finally:
        consumer.close()
    raise AssertionError(f"did not read back {value!r}")


@pytest.fixture
def topic(secured: Secured, topic_name: str) -> str:
    admin = AdminClient({"bootstrap.servers": secured.broker.bootstrap})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    return topic_name


@pytest.mark.parametrize(("listener", "mechanism", "user", "password"), [
    ("SASL_PLAINTEXT", "PLAIN", "alice", ALICE_PASSWORD),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", BOB_PASSWORD),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "bob", BOB_PASSWORD),
    ("SSL", None, "", ""),
    ("SASL_SSL", "SCRAM-SHA-512", "bob", BOB_PASSWORD),
    ("SASL_SSL", "PLAIN", "admin", ADMIN_PASSWORD),
])
def test_every_protocol_and_mechanism(secured: Secured, topic: str, listener: str,
                                      mechanism: str | None, user: str, password: str) -> None:
    round_trip(secured.client(listener, mechanism, user, password), topic)


def test_big_answers_over_tls_are_read_not_sent_from_files(secured: Secured,
                                                          topic: str) -> None:
    """Over TLS records are read and encrypted like any bytes (no sendfile), and the
    plain listener beside it sends the same ones from the files."""
    values = [b"%06d" % i * 100 for i in range(3000)]  # 1.8 MB: answers over 64 KiB
    producer = Producer(secured.client("PLAINTEXT"))
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(15) == 0
    for listener in ("SSL", "PLAINTEXT"):
        consumer = Consumer({**secured.client(listener), "group.id": f"g-{listener}"})
        consumer.assign([TopicPartition(topic, 0, 0)])
        seen: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(seen) < len(values) and time.monotonic() < deadline:
            seen += [m.value() for m in consumer.consume(1000, 0.5) if not m.error()]
        consumer.close()
        assert seen == values, listener


def test_mutual_tls(secured: Secured, topic: str) -> None:
    certificate, key = secured.certs.client("alice")
    round_trip(secured.client("MTLS", **{"ssl.certificate.location": str(certificate),
                                         "ssl.key.location": str(key)}), topic)
    errors: list[KafkaError] = []
    no_certificate = AdminClient(secured.client("MTLS", error_cb=errors.append))
    with pytest.raises(Exception, match=r"(?i)transport failure|timed out"):
        no_certificate.list_topics(timeout=3)
    no_certificate.poll(1)
    assert errors
    assert "TLS handshake with 127.0.0.1" in secured.broker.log()
    expired_certificate, expired_key = secured.certs.client("old", expired=True)
    expired = AdminClient(secured.client("MTLS", **{
        "ssl.certificate.location": str(expired_certificate),
        "ssl.key.location": str(expired_key)}))
    with pytest.raises(Exception, match=r"(?i)transport failure|timed out"):
        expired.list_topics(timeout=3)
    assert "the client's certificate: certificate has expired" in secured.broker.log()


def test_metadata_gives_each_listener_its_own_address(secured: Secured) -> None:
    for listener, mechanism, user, password in [
            ("PLAINTEXT", None, "", ""), ("SASL_SSL", "SCRAM-SHA-256", "bob", BOB_PASSWORD)]:
        admin = AdminClient(secured.client(listener, mechanism, user, password))
        brokers = admin.list_topics(timeout=10).brokers
        assert [(b.host, b.port) for b in brokers.values()] == [
            ("127.0.0.1", secured.ports[listener])]


KCAT_LOGINS = [("PLAIN", "alice", ALICE_PASSWORD), ("SCRAM-SHA-256", "bob", BOB_PASSWORD),
               ("SCRAM-SHA-512", "bob", BOB_PASSWORD)]


# Debian's kcat links librdkafka 2.0, which repeats its nonce in SCRAM (librdkafka#4895):
# Kafka 3.9 accepts that, and so must we
@pytest.mark.parametrize(("listener", "mechanism", "user", "password"), [
    *(("SASL_PLAINTEXT", *login) for login in KCAT_LOGINS),
    *(("SASL_SSL", *login) for login in KCAT_LOGINS),
    ("SSL", None, "", ""),
    ("MTLS", None, "", ""),
])
def test_kcat(secured: Secured, topic: str, listener: str, mechanism: str | None, user: str,
              password: str) -> None:
    protocol = secured.client(listener)["security.protocol"]
    options = ["-X", f"security.protocol={protocol}"]
    if "ssl" in protocol:
        options += ["-X", f"ssl.ca.location={secured.certs.ca}"]
    if mechanism is not None:
        options += ["-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={user}",
                    "-X", f"sasl.password={password}"]
    if listener == "MTLS":
        certificate, key = secured.certs.client("kcat")
        options += ["-X", f"ssl.certificate.location={certificate}",
                    "-X", f"ssl.key.location={key}"]
    base = ["kcat", "-b", secured.bootstrap(listener), *options]
    listed = subprocess.run([*base, "-L", "-m", "10"], capture_output=True, text=True,
                            timeout=30, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"broker 1 at 127.0.0.1:{secured.ports[listener]}" in listed.stdout
    value = f"{listener}-{mechanism}"
    produced = subprocess.run([*base, "-P", "-t", topic], input=value, capture_output=True,
                              text=True, timeout=30, check=False)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run([*base, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                              capture_output=True, text=True, timeout=30, check=False)
    assert value in consumed.stdout.split(), consumed.stderr


def failing_client(config: dict[str, Any]) -> list[str]:
    """The errors a client reports trying to reach the broker with ``config``."""
    errors: list[str] = []
    admin = AdminClient({**config, "error_cb": lambda e: errors.append(str(e))})
    with pytest.raises(Exception):  # noqa: B017, PT011  # KafkaException: what it says varies
        admin.list_topics(timeout=3)
    admin.poll(1)  # serves the error callbacks
    return errors


@pytest.mark.parametrize(("listener", "mechanism", "user", "password", "client_says"), [
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "wrong", "Invalid user credentials"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "nobody", BOB_PASSWORD, "Invalid user credentials"),
    ("SASL_PLAINTEXT", "PLAIN", "alice", "wrong", "Invalid username or password"),
    ("SASL_SSL", "PLAIN", "nobody", ALICE_PASSWORD, "Invalid username or password"),
])
def test_bad_credentials(secured: Secured, listener: str, mechanism: str, user: str,
                         password: str, client_says: str) -> None:
    errors = failing_client(secured.client(listener, mechanism, user, password))
    assert any(client_says in error for error in errors), errors
    log = secured.broker.log()
    assert f"with {mechanism} failed" in log
    assert "Traceback" not in log


def test_wrong_protocol_or_untrusted_certificate(secured: Secured) -> None:
    plaintext_on_tls = {"bootstrap.servers": secured.bootstrap("SSL"), "log_level": 0}
    failing_client(plaintext_on_tls)
    untrusted = secured.client("SSL")
    untrusted["ssl.ca.location"] = str(secured.certs.certificate)  # not the CA
    assert any("certificate verify failed" in e for e in failing_client(untrusted))
    log = secured.broker.log()
    assert "a client without TLS on a TLS listener?" in log
    assert "Traceback" not in log


def test_no_password_in_the_log(secured: Secured) -> None:
    failing_client(secured.client("SASL_PLAINTEXT", "PLAIN", "alice", "wrong-" + BOB_PASSWORD))
    log = secured.broker.log()
    assert not [s for s in (*SECRETS, "wrong-") if s in log]


def sasl_port(secured: Secured) -> str:
    return secured.bootstrap("SASL_PLAINTEXT")


def test_requests_before_authentication_close_the_connection(secured: Secured) -> None:
    with WireClient(sasl_port(secured)) as wire:
        versions = wire.request(18, 3, ApiVersionsRequest(client_software_name="t",
                                                          client_software_version="1"))
        assert {17, 36, 50, 51} <= {k.api_key for k in versions.api_keys}
        with pytest.raises(ConnectionError):
            wire.request(3, 12, MetadataRequest(topics=(), allow_auto_topic_creation=False,
                                                include_topic_authorized_operations=False))


def test_unknown_mechanism(secured: Secured) -> None:
    with WireClient(sasl_port(secured)) as wire:
        answer = wire.request(17, 1, SaslHandshakeRequest(mechanism="GSSAPI"))
        assert answer.error_code == 33
        assert set(answer.mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        assert wire.is_closed_by_peer()


def test_handshake_v1_then_authenticate_then_serve(secured: Secured) -> None:
    with WireClient(sasl_port(secured)) as wire:
        assert wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        answer = wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("alice", ALICE_PASSWORD)))
        assert answer.error_code == 0
        metadata = wire.request(3, 12, MetadataRequest(
            topics=(), allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
        assert metadata.brokers[0].port == secured.ports["SASL_PLAINTEXT"]
        again = wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        assert again.error_code == 34  # ILLEGAL_SASL_STATE: no re-authentication configured


def test_wrong_password_gets_its_answer_then_the_connection_closes(secured: Secured) -> None:
    with WireClient(sasl_port(secured)) as wire:
        wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        answer = wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("alice", "nope")))
        assert answer.error_code == 58
        assert "Invalid username or password" in answer.error_message
        assert wire.is_closed_by_peer()


def test_v0_handshake_takes_raw_tokens(secured: Secured) -> None:
    with WireClient(sasl_port(secured)) as wire:
        assert wire.request(17, 0, HandshakeV0(mechanism="PLAIN")).error_code == 0
        wire.send_raw(plain_token("alice", ALICE_PASSWORD))
        assert wire.recv_frame() == b""  # success: an empty token
        metadata = wire.request(3, 12, MetadataRequest(
            topics=(), allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
        assert metadata.cluster_id
    with WireClient(sasl_port(secured)) as wire:
        wire.request(17, 0, HandshakeV0(mechanism="PLAIN"))
        wire.send_raw(plain_token("alice", "nope"))
        assert wire.is_closed_by_peer()


def test_v0_handshake_scram_in_raw_frames(secured: Secured) -> None:
    client = ScramClient("SCRAM-SHA-256", "bob", BOB_PASSWORD)
    with WireClient(sasl_port(secured)) as wire:
        assert wire.request(17, 0, HandshakeV0(mechanism="SCRAM-SHA-256")).error_code == 0
        wire.send_raw(client.first())
        wire.send_raw(client.final(wire.recv_frame()))
        client.verify(wire.recv_frame())  # the broker proved it knows bob's keys
        metadata = wire.request(3, 12, MetadataRequest(
            topics=(), allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
        assert metadata.cluster_id


def test_scram_users_through_the_admin_api(secured: Secured) -> None:
    admin = AdminClient({"bootstrap.servers": secured.broker.bootstrap})
    too_few = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4095), b"pw")
    with pytest.raises(Exception, match="Iterations must be between 4096 and 16384"):
        admin.alter_user_scram_credentials([too_few])["carol"].result(10)
    with pytest.raises(Exception, match="does not exist"):
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(10)
    twice = [UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(mechanism, 4096), b"pw")
        for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)]
    with pytest.raises(Exception, match="cannot be altered twice"):
        admin.alter_user_scram_credentials(twice)["carol"].result(10)
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(10)
    assert sorted((i.mechanism.value, i.iterations)
                  for i in described.scram_credential_infos) == [(1, 4096), (2, 8192)]
    upsert = UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"dave-pw")
    admin.alter_user_scram_credentials([upsert])["dave"].result(10)
    dave = secured.client("SASL_PLAINTEXT", "SCRAM-SHA-512", "dave", "dave-pw")
    AdminClient(dave).list_topics(timeout=10)
    admin.alter_user_scram_credentials([UserScramCredentialDeletion(
        "dave", ScramMechanism.SCRAM_SHA_512)])["dave"].result(10)
    assert any("Invalid user credentials" in e for e in failing_client(dave))


def test_no_password_on_the_broker_command_line(secured: Secured) -> None:
    assert secured.broker.process is not None
    argv = Path(f"/proc/{secured.broker.process.pid}/cmdline").read_bytes().decode()
    assert "--config-file" in argv
    assert not [s for s in SECRETS if s in argv]


def test_credentials_are_in_the_metadata_not_the_passwords(secured: Secured) -> None:
    text = (secured.broker.data_dir / "metadata.json").read_text()
    assert '"bob"' in text
    assert BOB_PASSWORD not in text


def test_clients_reauthenticate_when_the_session_ends(secured: Secured, topic: str) -> None:
    # connections.max.reauth.ms=1500 on SASL_SSL: librdkafka re-authenticates (KIP-368)
    # on its open connections, and keeps working across several sessions
    config = secured.client("SASL_SSL", "SCRAM-SHA-256", "bob", BOB_PASSWORD)
    expired_before = secured.broker.log().count("SASL session expired")
    producer = Producer(config)
    delivered: list[Any] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        producer.produce(topic, b"x", on_delivery=lambda err, msg: delivered.append(err))
        producer.poll(0.2)
    assert producer.flush(15) == 0
    assert delivered
    assert all(err is None for err in delivered)
    # no connection had to be closed for a session that ran out
    assert secured.broker.log().count("SASL session expired") == expired_before


def test_session_lifetime_reauthentication_and_expiry(secured: Secured) -> None:
    metadata = MetadataRequest(topics=(), allow_auto_topic_creation=False,
                               include_topic_authorized_operations=False)
    with WireClient(secured.bootstrap("REAUTH")) as wire:
        wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        answer = wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("alice", ALICE_PASSWORD)))
        assert answer.session_lifetime.total_seconds() == 1.5
        # re-authentication: the same mechanism and user
        assert wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN")).error_code == 0
        assert wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("alice", ALICE_PASSWORD))).error_code == 0
        time.sleep(1.7)
        with pytest.raises(ConnectionError):  # the session ended: closed
            wire.request(3, 12, metadata)
    with WireClient(secured.bootstrap("REAUTH")) as wire:
        wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("alice", ALICE_PASSWORD)))
        wire.request(17, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        answer = wire.request(36, 2, SaslAuthenticateRequest(
            auth_bytes=plain_token("admin", ADMIN_PASSWORD)))  # another user: refused
        assert answer.error_code == 58
        assert wire.is_closed_by_peer()
