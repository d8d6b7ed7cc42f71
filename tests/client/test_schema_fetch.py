"""Schemas by id without confluent-kafka's registry client: the same answers as it gives,
basic auth and TLS as its settings say, the next URL when one is down, and kcli's
errors. The secured cases go through a relay (TLS, basic auth) to the real registry."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.client.schema_fetch import SchemaFetcher, schema_source
from kcli.client.schemas import RegistryClient, StoredSchema
from kcli.errors import BadInput, NotFound, Unreachable
from tests.support.broker import free_port
from tests.support.certs import Certificates, make_certificates

SCHEMA = '{"type":"record","name":"Fetched","fields":[{"name":"n","type":"long"}]}'


@pytest.fixture
def schema_id(schema_registry: str, topic_name: str) -> int:
    client = RegistryClient({"url": schema_registry})
    try:
        return client.register(f"{topic_name}-value", StoredSchema(SCHEMA))
    finally:
        client.close()


class Relay:
    """An HTTP(S) server that forwards GETs to the registry, after checking basic auth;
    answers 503 to the first ``unavailable`` requests."""

    def __init__(self, target: str, user: str, tls: ssl.SSLContext | None,
                 unavailable: int = 0) -> None:
        self.requests: list[str] = []
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                relay.requests.append(self.path)
                if len(relay.requests) <= unavailable:
                    self.answer(503, b'{"error_code":50301,"message":"busy"}')
                    return
                expected = "Basic " + base64.b64encode(user.encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.answer(401, b'{"error_code":401,"message":"Unauthorized"}')
                    return
                with urllib.request.urlopen(target + self.path) as upstream:
                    self.answer(upstream.status, upstream.read())

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


@pytest.fixture
def tls_relay(schema_registry: str, certificates: Certificates) -> Iterator[Relay]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.certificate, certificates.key)
    relay = Relay(schema_registry, "ada:s3cret", context)
    yield relay
    relay.close()


def test_same_schema_as_the_registry_client(schema_registry: str, schema_id: int) -> None:
    client = RegistryClient({"url": schema_registry})
    try:
        expected = client.schema(schema_id)
    finally:
        client.close()
    assert SchemaFetcher({"url": schema_registry}).schema(schema_id) == expected
    assert (expected.text, expected.schema_type) == (SCHEMA, "AVRO")


def test_unknown_id_and_dead_registry(schema_registry: str) -> None:
    with pytest.raises(NotFound, match=r"schema id 987654: .*\(registry error 40403\)"):
        SchemaFetcher({"url": schema_registry}).schema(987654)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable, match=f"cannot reach the schema registry at {dead}"):
        SchemaFetcher({"url": dead, "timeout": 2}).schema(1)


def test_next_url_when_the_first_is_down(schema_registry: str, schema_id: int) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    fetched = SchemaFetcher({"url": f"{dead}, {schema_registry}"}).schema(schema_id)
    assert fetched.text == SCHEMA


def test_tls_and_basic_auth(tls_relay: Relay, certificates: Certificates,
                            schema_id: int) -> None:
    settings = {"url": tls_relay.url, "ssl.ca.location": str(certificates.ca)}
    fetched = SchemaFetcher({**settings, "basic.auth.user.info": "ada:s3cret"})
    assert fetched.schema(schema_id).text == SCHEMA
    in_url = tls_relay.url.replace("https://", "https://ada:s3cret@")
    assert SchemaFetcher({**settings, "url": in_url}).schema(schema_id).text == SCHEMA
    with pytest.raises(Exception, match=r"Unauthorized \(registry error 401\)"):
        SchemaFetcher({**settings, "basic.auth.user.info": "ada:wrong"}).schema(schema_id)
    # the server's certificate is not trusted without the CA: as unreachable, not as 404
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):
        SchemaFetcher({"url": tls_relay.url, "ssl.ca.location": str(certificates.certificate),
                       "basic.auth.user.info": "ada:s3cret"}).schema(schema_id)


def test_busy_registry_is_retried(schema_registry: str, schema_id: int) -> None:
    relay = Relay(schema_registry, "u:p", None, unavailable=1)
    try:
        fetched = SchemaFetcher({"url": relay.url, "basic.auth.user.info": "u:p",
                                 "retries.wait.ms": 10})
        assert fetched.schema(schema_id).text == SCHEMA
        assert len(relay.requests) == 2
    finally:
        relay.close()


@pytest.mark.parametrize(("settings", "message"), [
    ({"url": "ftp://registry"}, "invalid url"),
    ({"url": "http://a:b@registry", "basic.auth.user.info": "a:b"}, "give one"),
    ({"url": "http://registry", "basic.auth.user.info": "nopassword"}, "user:password"),
    ({"url": "http://registry", "timeout": "soon"}, "settings"),
])
def test_bad_settings(settings: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput, match=message):
        SchemaFetcher(settings)


def test_settings_it_does_not_speak_go_to_the_registry_client(schema_registry: str) -> None:
    assert isinstance(schema_source({"url": schema_registry}), SchemaFetcher)
    other = schema_source({"url": schema_registry,
                           "bearer.auth.credentials.source": "STATIC_TOKEN",
                           "bearer.auth.token": "t", "bearer.auth.logical.cluster": "lsrc-1",
                           "bearer.auth.identity.pool.id": "pool-1"})
    assert isinstance(other, RegistryClient)
    other.close()
