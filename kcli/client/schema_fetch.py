"""Schemas by id over HTTP(S) with the standard library, for decoding records.

Decoding needs one request per schema id, nothing else. confluent-kafka's
SchemaRegistryClient imports httpx, authlib, trio and cryptography first: 150 ms of
every ``kcli consume -f avro`` run, measured, an eighth of decoding 200,000 records
(bench/registry_decode.py). :class:`SchemaFetcher` makes that one GET with
http.client and reads the same settings the same way: a comma-separated ``url`` list
tried in order, basic auth from ``basic.auth.user.info`` or from the URL, ``ssl.*``,
``timeout`` and ``max.retries``. A configuration with any other setting (bearer auth,
a proxy) is given to SchemaRegistryClient instead (:func:`schema_source`).
"""

from __future__ import annotations

import base64
import http.client
import os
import ssl
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import orjson

from kcli.errors import BadInput, NotFound, OperationFailed, Unreachable

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from kcli.client.schemas import RegistryClient, StoredSchema

_UNDERSTOOD = {"url", "basic.auth.user.info", "ssl.ca.location", "ssl.certificate.location",
               "ssl.key.location", "ssl.key.password", "timeout", "max.retries",
               "retries.wait.ms", "retries.max.wait.ms", "cache.capacity",
               "cache.latest.ttl.sec"}
_RETRIED = {408, 429, 500, 502, 503, 504}  # as SchemaRegistryClient retries


class SchemaFetcher:
    """``GET /schemas/ids/{id}`` against one registry (with several URLs, the first
    that answers), with kcli's errors. Has what RegistryDecoder uses of RegistryClient:
    ``url``, ``schema()``, ``client`` (built on first use) and ``close()``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.url = str(config["url"])
        self._urls = [u.strip().rstrip("/") for u in self.url.split(",") if u.strip()]
        if not self._urls or not all(u.startswith(("http://", "https://"))
                                     for u in self._urls):
            raise BadInput(f"schema registry settings: invalid url {self.url}")
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, "
                                   "application/json"}
        credentials = self._credentials()
        if credentials is not None:
            token = base64.b64encode(credentials.encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        try:
            self._timeout = float(config.get("timeout") or 10)
            self._retries = int(config.get("max.retries", 1))
            self._wait = int(config.get("retries.wait.ms", 1000)) / 1000
        except ValueError as error:
            raise BadInput(f"schema registry settings: {error}") from None
        self._tls: ssl.SSLContext | None = None

    def _credentials(self) -> str | None:
        parts = urlsplit(self._urls[0])
        in_url = (f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
                  if parts.username or parts.password else None)
        given = self.config.get("basic.auth.user.info")
        if given is not None and in_url is not None:
            raise BadInput("schema registry settings: basic.auth.user.info and "
                           "credentials in the url; give one")
        if given is not None and ":" not in str(given):
            raise BadInput("schema registry settings: basic.auth.user.info must be "
                           "user:password")
        return str(given) if given is not None else in_url

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca = self.config.get("ssl.ca.location")
            if ca is None:
                ca = os.environ.get("SSL_CERT_FILE")
            if ca is None and not os.environ.get("SSL_CERT_DIR"):
                try:
                    import certifi  # what SchemaRegistryClient trusts by default

                    ca = certifi.where()
                except ImportError:
                    pass  # the system's store
            try:
                context = ssl.create_default_context(
                    cafile=ca if ca and not os.path.isdir(ca) else None,
                    capath=ca if ca and os.path.isdir(ca) else
                    os.environ.get("SSL_CERT_DIR"))
                certificate = self.config.get("ssl.certificate.location")
                if certificate is not None:
                    context.load_cert_chain(certificate, self.config.get("ssl.key.location"),
                                            self.config.get("ssl.key.password"))
            except (OSError, ssl.SSLError) as error:
                raise BadInput(f"schema registry TLS settings: {error}") from None
            self._tls = context
        return self._tls

    def _request(self, base: str, path: str) -> tuple[int, bytes]:
        # a connection per request: schemas are fetched once per id, and a kept one
        # could have been closed by the server meanwhile
        parts = urlsplit(base)
        host = parts.hostname or "localhost"
        connection = (http.client.HTTPSConnection(host, parts.port, timeout=self._timeout,
                                                  context=self._context())
                      if parts.scheme == "https" else
                      http.client.HTTPConnection(host, parts.port, timeout=self._timeout))
        try:
            connection.request("GET", parts.path + path, headers=self._headers)
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def _get(self, path: str, what: str) -> Any:
        failure: OSError | None = None
        for base in self._urls:
            for attempt in range(self._retries + 1):
                try:
                    status, body = self._request(base, path)
                except OSError as error:  # refused, reset, TLS, timeout: the next URL
                    failure = error
                    break
                if status in _RETRIED and attempt < self._retries:
                    time.sleep(self._wait)
                    continue
                return _answer(status, body, what)
        raise Unreachable(f"cannot reach the schema registry at {self.url}: {failure}")

    def schema(self, schema_id: int) -> StoredSchema:
        """The schema with this id."""
        from kcli.client.schemas import StoredSchema

        doc = self._get(f"/schemas/ids/{int(schema_id)}", f"schema id {schema_id}")
        refs = tuple((str(r["name"]), str(r["subject"]), int(r.get("version") or 0))
                     for r in doc.get("references") or ())
        return StoredSchema(str(doc.get("schema") or ""), str(doc.get("schemaType") or "AVRO"),
                            refs)

    @cached_property
    def client(self) -> SchemaRegistryClient:
        """confluent-kafka's client on the same settings (for schemas with references,
        which AvroDeserializer resolves)."""
        from kcli.client.schemas import RegistryClient

        return RegistryClient(self.config).client

    def close(self) -> None:
        """Close the full client's connections, if one was made."""
        if "client" in self.__dict__:
            self.client.close()


def _answer(status: int, body: bytes, what: str) -> Any:
    try:
        doc = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        doc = {"message": body[:200].decode("utf-8", "replace")}
    if 200 <= status < 300 and isinstance(doc, dict):
        return doc
    if not isinstance(doc, dict):
        doc = {}
    code = doc.get("error_code", status)
    message = f"{what}: {doc.get('message') or 'HTTP ' + str(status)} (registry error {code})"
    if status == 404:
        raise NotFound(message)
    if status in (400, 422):
        raise BadInput(message)
    raise OperationFailed(message)


def schema_source(config: dict[str, Any]) -> SchemaFetcher | RegistryClient:
    """What reads schemas by id for these settings: the light fetcher when it
    understands every setting, else confluent-kafka's client."""
    if set(config) <= _UNDERSTOOD:
        return SchemaFetcher(config)
    from kcli.client.schemas import RegistryClient

    return RegistryClient(config)
