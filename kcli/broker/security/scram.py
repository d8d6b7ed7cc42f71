"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them (KIP-84):
the stored credential, the server's two steps and a client, sans-IO.

Kafka 3.9's rules kept here: only the ``n`` channel-binding flag; an authzid must equal
the user; an unknown user fails at the first message; iterations are at least 4096; the
final nonce must end with the server's; the server never sends ``e=`` (a failure is
SASL_AUTHENTICATION_FAILED, said by the caller).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
MECHANISM_CODES = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
"""The mechanism numbers of Describe/AlterUserScramCredentials."""
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384


class AuthenticationFailed(Exception):
    """The exchange failed; the message is safe to give the client (no secrets)."""


@dataclass(frozen=True)
class ScramCredential:
    """What a broker keeps of a password: never the password itself."""

    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, Any]:
        """Base64 fields, as stored in the cluster metadata."""
        return {"salt": _b64(self.salt), "stored_key": _b64(self.stored_key),
                "server_key": _b64(self.server_key), "iterations": self.iterations}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ScramCredential:
        """Parse what :meth:`to_json` wrote."""
        return cls(base64.b64decode(doc["salt"]), base64.b64decode(doc["stored_key"]),
                   base64.b64decode(doc["server_key"]), int(doc["iterations"]))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_name).digest()


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi(password, salt, i): PBKDF2 with the mechanism's HMAC."""
    return hashlib.pbkdf2_hmac(HASHES[mechanism], password.encode(), salt, iterations)


def credential_from_salted(mechanism: str, salt: bytes, salted: bytes,
                           iterations: int) -> ScramCredential:
    """The stored credential from a salted password (what AlterUserScramCredentials
    sends: the client salts, the password never travels)."""
    hash_name = HASHES[mechanism]
    client_key = _hmac(hash_name, salted, b"Client Key")
    return ScramCredential(salt, hashlib.new(hash_name, client_key).digest(),
                           _hmac(hash_name, salted, b"Server Key"), iterations)


def make_credential(mechanism: str, password: str, iterations: int = MIN_ITERATIONS,
                    salt: bytes | None = None) -> ScramCredential:
    """A new credential for a password (a random salt unless one is given)."""
    salt = salt if salt is not None else secrets.token_bytes(32)
    return credential_from_salted(mechanism, salt,
                                  salted_password(mechanism, password, salt, iterations),
                                  iterations)


def _attributes(message: str) -> list[tuple[str, str]]:
    pairs = []
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise AuthenticationFailed(f"malformed SCRAM message part {part[:40]!r}")
        pairs.append((key, value))
    return pairs


def _saslname(value: str) -> str:
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise AuthenticationFailed("malformed SCRAM user name")
    return value.replace("=2C", ",").replace("=3D", "=")


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode("ascii")  # no ',' in base64


class ScramServer:
    """One server side of an exchange: :meth:`step` takes each client message and
    returns the answer; :attr:`user` is set once it succeeded."""

    def __init__(self, mechanism: str,
                 lookup: Callable[[str], ScramCredential | None]) -> None:
        self.mechanism = mechanism
        self.hash_name = HASHES[mechanism]
        self.lookup = lookup
        self.user: str | None = None
        self._state = "first"
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._credential: ScramCredential | None = None
        self._name = ""

    @property
    def done(self) -> bool:
        """Whether the exchange succeeded."""
        return self.user is not None

    def step(self, token: bytes) -> bytes:
        """The answer to one client message; AuthenticationFailed ends the exchange."""
        try:
            message = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("SCRAM message is not UTF-8") from None
        if self._state == "first":
            return self._first(message)
        if self._state == "final":
            return self._final(message)
        raise AuthenticationFailed("SCRAM exchange already finished")

    def _first(self, message: str) -> bytes:
        flag, _, rest = message.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag != "n":
            raise AuthenticationFailed("only the 'n' channel binding flag is supported")
        attributes = _attributes(bare)
        if len(attributes) < 2 or attributes[0][0] != "n" or attributes[1][0] != "r":
            raise AuthenticationFailed("SCRAM client-first message needs n= and r=")
        name = _saslname(attributes[0][1])
        extensions = dict(attributes[2:])
        if extensions.get("tokenauth", "false").lower() == "true":
            raise AuthenticationFailed("delegation tokens are not supported")
        if authzid and (not authzid.startswith("a=") or _saslname(authzid[2:]) != name):
            raise AuthenticationFailed("authorization id differs from the user name")
        if not attributes[1][1]:
            raise AuthenticationFailed("empty client nonce")
        credential = self.lookup(name)
        if credential is None:
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        if credential.iterations < MIN_ITERATIONS:
            raise AuthenticationFailed(f"iterations {credential.iterations} below "
                                       f"{MIN_ITERATIONS}")
        self._credential, self._name = credential, name
        self._client_first_bare = bare
        self._nonce = attributes[1][1] + _nonce()
        self._server_first = (f"r={self._nonce},s={_b64(credential.salt)},"
                              f"i={credential.iterations}")
        self._state = "final"
        return self._server_first.encode()

    def _final(self, message: str) -> bytes:
        self._state = "failed"
        without_proof, sep, proof_text = message.rpartition(",p=")
        if not sep:
            raise AuthenticationFailed("SCRAM client-final message has no proof")
        attributes = dict(_attributes(without_proof))
        # Kafka 3.9 accepts a nonce that ends with ours: librdkafka before 2.6.1 sends
        # its own nonce twice (librdkafka#4895; Kafka 4 wants them equal, RFC 5802)
        if not attributes.get("r", "").endswith(self._nonce):
            raise AuthenticationFailed("SCRAM nonce does not match")
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError:
            raise AuthenticationFailed("SCRAM proof is not base64") from None
        credential = self._credential
        assert credential is not None
        auth_message = ",".join((self._client_first_bare, self._server_first,
                                 without_proof)).encode()
        signature = _hmac(self.hash_name, credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(),
                                   credential.stored_key):
            raise AuthenticationFailed("Authentication failed: Invalid user credentials")
        self.user = self._name
        self._state = "done"
        server_signature = _hmac(self.hash_name, credential.server_key, auth_message)
        return f"v={_b64(server_signature)}".encode()


class ScramClient:
    """The client side (brokers logging in to each other, and tests)."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        self.mechanism = mechanism
        self.hash_name = HASHES[mechanism]
        self.password = password
        name = user.replace("=", "=3D").replace(",", "=2C")
        self._bare = f"n={name},r={_nonce()}"
        self._auth_message = b""
        self._server_key = b""

    def first(self) -> bytes:
        """The client-first message."""
        return f"n,,{self._bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """The client-final message, from the server-first one."""
        text = server_first.decode()
        attributes = dict(_attributes(text))
        nonce, salt = attributes["r"], base64.b64decode(attributes["s"])
        iterations = int(attributes["i"])
        if not nonce.startswith(self._bare.split(",r=", 1)[1]):
            raise AuthenticationFailed("server nonce does not extend ours")
        salted = salted_password(self.mechanism, self.password, salt, iterations)
        client_key = _hmac(self.hash_name, salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        self._auth_message = ",".join((self._bare, text, without_proof)).encode()
        signature = _hmac(self.hash_name, stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_key = _hmac(self.hash_name, salted, b"Server Key")
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> None:
        """Check the server's signature (it knew the password's keys)."""
        expected = _hmac(self.hash_name, self._server_key, self._auth_message)
        if server_final.decode() != f"v={_b64(expected)}":
            raise AuthenticationFailed("the server's SCRAM signature is wrong")
