"""Listener, JAAS, PLAIN, principal and SCRAM-user rules, as Kafka has them."""

from __future__ import annotations

import base64

import pytest

from kcli.broker.cluster.metadata import ClusterMetadata
from kcli.broker.configs import InvalidConfig, Settings
from kcli.broker.errors import ErrorCode
from kcli.broker.security import users
from kcli.broker.security.jaas import parse_jaas
from kcli.broker.security.listeners import Protocol, parse_listeners
from kcli.broker.security.plain import PlainServer, plain_token
from kcli.broker.security.scram import AuthenticationFailed, ScramServer
from kcli.broker.security.tls import principal

JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" user_admin="admin-secret" '
        'user_alice="al\\"ice";')


def test_jaas_users_and_login() -> None:
    config = parse_jaas(JAAS)
    assert config.module.endswith("PlainLoginModule")
    assert config.plain_users == {"admin": "admin-secret", "alice": 'al"ice'}
    assert config.login == ("admin", "admin-secret")


@pytest.mark.parametrize("text", ["", "Module required user_a=\"x\"", "Module nope;",
                                  'Module required user_a="x" "stray";'])
def test_bad_jaas_never_echoes_values(text: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        parse_jaas(text)
    assert '"x"' not in str(raised.value)


@pytest.mark.parametrize(("token", "message"), [
    (plain_token("alice", "secret"), None),
    (b"alice\0alice\0secret", None),  # authzid equal to the user
    (b"bob\0alice\0secret", "authorization id"),
    (plain_token("alice", "wrong"), "Invalid username or password"),
    (plain_token("nobody", "secret"), "Invalid username or password"),
    (plain_token("", "secret"), "empty"),
    (b"\0alice\0secret\0extra", "expected 3 tokens"),
    (b"\xff\0a\0b", "UTF-8"),
])
def test_plain(token: bytes, message: str | None) -> None:
    exchange = PlainServer({"alice": "secret"})
    if message is None:
        assert exchange.step(token) == b""
        assert exchange.user == "alice"
        return
    with pytest.raises(AuthenticationFailed, match=message):
        exchange.step(token)


def test_listeners() -> None:
    settings = Settings({
        "listeners": "INTERNAL://0.0.0.0:9093,SASL_SSL://:9094,PLAINTEXT://127.0.0.1:0",
        "advertised.listeners": "SASL_SSL://kafka.example:19094",
        "listener.security.protocol.map": "INTERNAL:SSL,SASL_SSL:SASL_SSL,"
                                          "PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "internal"})
    found = parse_listeners(settings, "127.0.0.1", 9092, "localhost")
    assert [(item.name, item.protocol) for item in found] == [
        ("INTERNAL", Protocol.SSL), ("SASL_SSL", Protocol.SASL_SSL),
        ("PLAINTEXT", Protocol.PLAINTEXT)]
    assert (found[0].host, found[0].advertised_host) == ("0.0.0.0", "localhost")
    assert (found[1].advertised_host, found[1].advertised_port) == ("kafka.example", 19094)
    assert found[2].with_port(40000).advertised_port == 40000
    default = parse_listeners(Settings({}), "127.0.0.1", 9092, "127.0.0.1")
    assert [(d.name, d.port) for d in default] == [("PLAINTEXT", 9092)]


@pytest.mark.parametrize(("settings", "message"), [
    ({"listeners": "FOO://:1"}, "no security protocol"),
    ({"listeners": "PLAINTEXT://:1,PLAINTEXT://:2"}, "given twice"),
    ({"listeners": "PLAINTEXT:/:1"}, "not NAME://HOST:PORT"),
    ({"listeners": "PLAINTEXT://:1", "advertised.listeners": "SSL://a:2"}, "not in listeners"),
    ({"listeners": "PLAINTEXT://:1", "advertised.listeners": "PLAINTEXT://0.0.0.0:1"},
     "may not advertise"),
    ({"listeners": "PLAINTEXT://:1", "inter.broker.listener.name": "SSL"}, "not in listeners"),
    ({"listeners": "A://:1", "listener.security.protocol.map": "A:TLS"}, "NAME:PROTOCOL"),
])
def test_bad_listeners(settings: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        parse_listeners(Settings(settings), "127.0.0.1", 9092, "127.0.0.1")


def test_per_listener_settings() -> None:
    settings = Settings({"sasl.enabled.mechanisms": "PLAIN",
                         "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
                         "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS})
    assert settings.for_listener("SASL_SSL", "sasl.enabled.mechanisms") == "SCRAM-SHA-512"
    assert settings.for_listener("OTHER", "sasl.enabled.mechanisms") == "PLAIN"
    assert settings.for_listener("SASL_SSL", "sasl.jaas.config", "PLAIN") == JAAS
    for bad in ("listener.name.x.log.retention.ms", "listener.name.x.ssl.nope"):
        with pytest.raises(InvalidConfig, match="unknown broker setting"):
            Settings({bad: "1"})
    with pytest.raises(InvalidConfig, match="GSSAPI"):
        Settings({"sasl.enabled.mechanisms": "GSSAPI"})


def test_certificate_principal_is_rfc2253() -> None:
    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc"),),
               (("commonName", "alice"),))
    assert principal({"subject": subject}) == "User:CN=alice,O=Acme\\, Inc,C=US"
    assert principal(None) == "User:ANONYMOUS"


def scram_metadata() -> ClusterMetadata:
    metadata = ClusterMetadata("c")
    users.alter(metadata, [], [users.Upsertion("alice", 1, 4096, b"salt", b"x" * 32)])
    return metadata


def test_scram_users_rules() -> None:
    metadata = scram_metadata()
    assert users.credential(metadata, "alice", "SCRAM-SHA-256") is not None
    assert users.describe(metadata, None) == [users.Outcome("alice", credentials=((1, 4096),))]
    described = users.describe(metadata, ["bob", "alice", "alice"])
    assert [(o.user, o.error) for o in described] == [
        ("bob", ErrorCode.resource_not_found), ("alice", ErrorCode.duplicate_resource)]
    outcomes = users.alter(metadata, [("alice", 2), ("", 1)], [
        users.Upsertion("bob", 1, 4095, b"s", b"p"),
        users.Upsertion("carol", 3, 4096, b"s", b"p"),
        users.Upsertion("dave", 2, 4096, b"", b"p")])
    assert {o.user: o.error for o in outcomes} == {
        "alice": ErrorCode.resource_not_found, "": ErrorCode.unacceptable_credential,
        "bob": ErrorCode.unacceptable_credential, "carol": ErrorCode.unsupported_sasl_mechanism,
        "dave": ErrorCode.unacceptable_credential}
    assert set(metadata.scram) == {"alice"}
    assert users.alter(metadata, [("alice", 1)], []) == [users.Outcome("alice")]
    assert metadata.scram == {}


def test_stored_scram_users_log_in_and_survive_the_metadata_file() -> None:
    from kcli.broker.security.scram import ScramClient, salted_password

    metadata = ClusterMetadata("c")
    salted = salted_password("SCRAM-SHA-512", "pw", b"NaCl", 4096)
    users.alter(metadata, [], [users.Upsertion("eve", 2, 4096, b"NaCl", salted)])
    reloaded = ClusterMetadata.from_json(metadata.to_json())
    exchange = ScramServer("SCRAM-SHA-512",
                           lambda u: users.credential(reloaded, u, "SCRAM-SHA-512"))
    client = ScramClient("SCRAM-SHA-512", "eve", "pw")
    client.verify(exchange.step(client.final(exchange.step(client.first()))))
    assert exchange.user == "eve"
    stored = str(metadata.to_json()["scram"])
    assert base64.b64encode(salted).decode() not in stored  # keys only, not the secret
