"""SCRAM, sans-IO: RFC 7677's exchange to the byte, our client against our server, and
any bytes a client sends end in AuthenticationFailed, never another exception."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kcli.broker.security import scram
from kcli.broker.security.scram import (
    AuthenticationFailed,
    ScramClient,
    ScramServer,
    make_credential,
)

USERS = {"SCRAM-SHA-256": make_credential("SCRAM-SHA-256", "pencil"),
         "SCRAM-SHA-512": make_credential("SCRAM-SHA-512", "pencil", iterations=8192)}


def server(mechanism: str) -> ScramServer:
    return ScramServer(mechanism, lambda user: USERS[mechanism] if user == "user" else None)


def test_rfc7677_example(monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 7677 section 3: the same salt, nonces and password give the same proof and
    # server signature
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored = make_credential("SCRAM-SHA-256", "pencil", 4096, salt)
    monkeypatch.setattr(scram, "_nonce", lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    exchange = ScramServer("SCRAM-SHA-256", lambda user: stored)
    first = exchange.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    final = exchange.step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                          b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert exchange.user == "user"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_client_and_server_agree(mechanism: str) -> None:
    exchange, client = server(mechanism), ScramClient(mechanism, "user", "pencil")
    client.verify(exchange.step(client.final(exchange.step(client.first()))))
    assert exchange.done


@pytest.mark.parametrize(("first", "password", "message"), [
    (b"n,,n=nobody,r=abc", "pencil", "Invalid user credentials"),  # unknown user
    (b"n,,n=user,r=abc", "wrong", "Invalid user credentials"),
    (b"y,,n=user,r=abc", "pencil", "channel binding"),
    (b"n,a=admin,n=user,r=abc", "pencil", "authorization id"),
    (b"n,,n=user,r=abc,tokenauth=true", "pencil", "delegation tokens"),
])
def test_refusals(first: bytes, password: str, message: str) -> None:
    exchange = server("SCRAM-SHA-256")

    def attempt() -> None:
        answer = exchange.step(first)
        client = ScramClient("SCRAM-SHA-256", "user", password)
        client._bare = first.decode()[3:]  # the same nonce the server saw
        exchange.step(client.final(answer))

    with pytest.raises(AuthenticationFailed, match=message):
        attempt()
    assert not exchange.done


def old_librdkafka_final(bare: str, server_first: bytes, password: str) -> bytes:
    """The client-final message librdkafka before 2.6.1 sends: its own nonce, then the
    server's whole one (which already starts with it), proof over exactly that."""
    attributes = dict(part.split("=", 1) for part in server_first.decode().split(","))
    client_nonce = bare.split(",r=", 1)[1]
    salted = scram.salted_password("SCRAM-SHA-256", password,
                                   base64.b64decode(attributes["s"]), int(attributes["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={client_nonce}{attributes['r']}"
    auth = f"{bare},{server_first.decode()},{without_proof}".encode()
    signature = hmac.new(stored_key, auth, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def test_old_librdkafka_doubled_nonce_is_accepted_as_kafka_3_9_does() -> None:
    exchange = server("SCRAM-SHA-256")
    bare = "n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    final = old_librdkafka_final(bare, exchange.step(f"n,,{bare}".encode()), "pencil")
    exchange.step(final)
    assert exchange.done


def test_a_nonce_that_is_not_ours_fails() -> None:
    exchange = server("SCRAM-SHA-256")
    client = ScramClient("SCRAM-SHA-256", "user", "pencil")
    final = client.final(exchange.step(client.first())).decode()
    nonce = final.split(",r=", 1)[1].split(",", 1)[0]
    other = nonce[:-1] + ("x" if nonce[-1] != "x" else "y")  # a random nonce may end in x
    with pytest.raises(AuthenticationFailed, match="nonce does not match"):
        exchange.step(final.replace(nonce, other).encode())


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_bytes_fail_cleanly(first: bytes, final: bytes) -> None:
    exchange = server("SCRAM-SHA-512")
    try:
        exchange.step(first)
        exchange.step(final)
    except AuthenticationFailed:
        return
    raise AssertionError("random bytes authenticated")


def test_credentials_keep_no_password() -> None:
    stored = make_credential("SCRAM-SHA-512", "pencil")
    assert b"pencil" not in repr(stored.to_json()).encode()
    assert scram.ScramCredential.from_json(stored.to_json()) == stored
