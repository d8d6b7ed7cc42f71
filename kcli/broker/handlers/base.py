"""What every handler shares: the request context, the registry, response building.

A handler is an async function ``(ctx, request) -> response | None``; it never sees a
socket. kio has one class per message version, so handlers build responses with
``make``, which keeps only the fields that version has and converts plain ints to the
types kio writes (error codes, millisecond durations and times).
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kcli.broker.errors import ErrorCode
from kcli.broker.protocol.codec import RequestHeader, response_type
from kcli.broker.security.acls import Operation, ResourceType

if TYPE_CHECKING:
    from kcli.broker.broker import Broker
    from kcli.broker.cluster.metadata import BrokerInfo
    from kcli.broker.security.session import Session

Handler = Callable[["RequestContext", Any], Awaitable[Any]]
authorizer_log = logging.getLogger("kcli.broker.authorizer")


def _camel(name: str) -> str:
    """Kafka's spelling of an ACL enum name: TRANSACTIONAL_ID -> TransactionalId."""
    return name.title().replace("_", "")
"""Denials, one line each (Kafka's kafka.authorizer.logger)."""
HANDLERS: dict[int, Handler] = {}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler knows about the request besides its body."""

    broker: Broker
    header: RequestHeader
    session: Session

    @property
    def peer(self) -> str:
        """The client's address, host:port."""
        return self.session.peer

    @property
    def host(self) -> str:
        """The client's address without the port (what ACLs match)."""
        return self.peer.rsplit(":", 1)[0] if ":" in self.peer else self.peer

    def allowed(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Whether this connection's principal may do ``operation`` on the resource (always,
        without an authorizer). A denial is logged as Kafka's authorizer logger does."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return True
        host = self.host
        if authorizer.authorize(self.session.principal, host, operation, resource_type, name):
            return True
        authorizer_log.info(
            "Principal = %s is Denied Operation = %s from host = %s on resource = %s:%s "
            "for request = %s", self.session.principal, _camel(operation.name), host,
            _camel(resource_type.name), name, self.header.api_key)
        return False

    def authorized_operations(self, resource_type: ResourceType, name: str,
                              candidates: int) -> int:
        """The bitfield (1 << operation code) of the ``candidates`` this principal may
        do on the resource: what Metadata and Describe* answer when asked (KIP-430)."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return candidates
        host = self.host
        return sum(1 << op for op in Operation if candidates & (1 << op)
                   and authorizer.authorize(self.session.principal, host, op, resource_type,
                                            name))

    def endpoint(self, info: BrokerInfo) -> tuple[str, int] | None:
        """Where this client reaches a broker: its endpoint on the listener the request
        came in on (Kafka answers each listener with its own addresses)."""
        return info.endpoint(self.session.listener.name)

    @property
    def version(self) -> int:
        """The API version of the request."""
        return self.header.api_version

    def response_class(self, name: str | None = None) -> Any:
        """The response class of this request's version, or a nested class of it by name."""
        module = response_module(self.header.api_key, self.header.api_version)
        if name is None:
            return response_type(self.header.api_key, self.header.api_version)
        return getattr(module, name)


def handles(api_key: int) -> Callable[[Handler], Handler]:
    """Register a handler for an API key."""

    def register(handler: Handler) -> Handler:
        HANDLERS[api_key] = handler
        return handler

    return register


@cache
def response_module(api_key: int, version: int) -> ModuleType:
    """The kio module holding a response version's classes."""
    return sys.modules[response_type(api_key, version).__module__]


def _to_error(value: Any) -> ErrorCode:
    return value if isinstance(value, ErrorCode) else ErrorCode(value)


def _to_timedelta(value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    return datetime.timedelta(milliseconds=value)


def _to_datetime(value: Any) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    if value < 0:
        return None
    return _EPOCH + datetime.timedelta(milliseconds=value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "error_code": _to_error,
    "timedelta_i32": _to_timedelta,
    "timedelta_i64": _to_timedelta,
    "datetime_i64": _to_datetime,
}


@cache
def _field_plan(cls: type) -> dict[str, Callable[[Any], Any] | None]:
    plan: dict[str, Callable[[Any], Any] | None] = {}
    for f in fields(cls):
        plan[f.name] = _CONVERTERS.get(f.metadata.get("kafka_type", ""))
    return plan


def make(cls: type, **values: Any) -> Any:
    """Build a kio message of any version from the fields it has among ``values``."""
    plan = _field_plan(cls)
    kwargs = {}
    for name, value in values.items():
        if name in plan:
            convert = plan[name]
            kwargs[name] = value if convert is None else convert(value)
    return cls(**kwargs)


def millis(value: datetime.timedelta | int) -> int:
    """A kio duration field as integer milliseconds."""
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds() * 1000)
    return int(value)
