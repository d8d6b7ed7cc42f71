"""Kafka's ACL model and its authorizer (StandardAuthorizer's rules), sans-IO.

An ACL applies to a request when its resource pattern matches (a LITERAL name, the
LITERAL ``*``, or a PREFIXED prefix), its principal is the user or ``User:*``, its host
is the client's address or ``*``, and its operation is the one asked or ALL. Then:
super users are allowed; any DENY denies; an ALLOW allows (ALLOW READ, WRITE, DELETE or
ALTER also gives DESCRIBE, ALTER_CONFIGS gives DESCRIBE_CONFIGS); a resource with no
ACL at all follows ``allow.everyone.if.no.acl.found``; anything else is denied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"


class ResourceType(IntEnum):
    """What an ACL protects (codes on the wire)."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    """How an ACL's resource name matches."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """What a request does to a resource."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    """ALLOW or DENY."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


_IMPLIED_BY = {Operation.DESCRIBE: {Operation.READ, Operation.WRITE, Operation.DELETE,
                                    Operation.ALTER},
               Operation.DESCRIBE_CONFIGS: {Operation.ALTER_CONFIGS}}
"""Operations whose ALLOW also allows the key operation."""


class InvalidAcl(ValueError):
    """An ACL that cannot be created (INVALID_REQUEST); the message says why."""


@dataclass(frozen=True, order=True)
class Acl:
    """One access control entry on one resource pattern."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def check(self) -> None:
        """Raise InvalidAcl for what CreateAcls refuses: ANY/MATCH/UNKNOWN values, an
        empty name, a principal that is not TYPE:NAME."""
        for value in (self.resource_type, self.pattern, self.operation, self.permission):
            if value.value <= 1 or (value is PatternType.MATCH):
                raise InvalidAcl(f"{type(value).__name__} {value.name} is not allowed "
                                 "in an ACL")
        if not self.name:
            raise InvalidAcl("the resource name is empty")
        if self.resource_type is ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            raise InvalidAcl(f"the cluster resource is named {CLUSTER_NAME}")
        kind, sep, who = self.principal.partition(":")
        if not sep or not kind or not who:
            raise InvalidAcl(f"principal {self.principal!r} is not TYPE:NAME (User:alice)")
        if not self.host:
            raise InvalidAcl("the host is empty (use * for any)")

    def to_json(self) -> dict[str, Any]:
        """As stored in the cluster metadata."""
        return {"resource_type": self.resource_type.name, "name": self.name,
                "pattern": self.pattern.name, "principal": self.principal,
                "host": self.host, "operation": self.operation.name,
                "permission": self.permission.name}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Acl:
        """Parse what :meth:`to_json` wrote."""
        return cls(ResourceType[doc["resource_type"]], str(doc["name"]),
                   PatternType[doc["pattern"]], str(doc["principal"]), str(doc["host"]),
                   Operation[doc["operation"]], Permission[doc["permission"]])


@dataclass(frozen=True)
class AclFilter:
    """What Describe/DeleteAcls select: ANY (or None) matches everything; MATCH selects
    the ACLs that would apply to the named resource."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, acl: Acl) -> bool:
        """Whether the filter selects ``acl``."""
        if self.resource_type is not ResourceType.ANY and acl.resource_type != self.resource_type:
            return False
        if self.pattern is PatternType.MATCH:
            if self.name is not None and not _pattern_applies(acl, self.name):
                return False
        else:
            if self.pattern is not PatternType.ANY and acl.pattern != self.pattern:
                return False
            if self.name is not None and acl.name != self.name:
                return False
        return ((self.principal is None or acl.principal == self.principal)
                and (self.host is None or acl.host == self.host)
                and (self.operation is Operation.ANY or acl.operation == self.operation)
                and (self.permission is Permission.ANY or acl.permission == self.permission))


def _pattern_applies(acl: Acl, name: str) -> bool:
    if acl.pattern is PatternType.LITERAL:
        return acl.name in (name, WILDCARD)
    return acl.pattern is PatternType.PREFIXED and name.startswith(acl.name)


class Authorizer:
    """Decisions over one set of ACLs."""

    def __init__(self, acls: Iterable[Acl], super_users: Iterable[str] = (),
                 allow_if_no_acl: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._by_type: dict[ResourceType, list[Acl]] = {}
        for acl in acls:
            self._by_type.setdefault(acl.resource_type, []).append(acl)

    def authorize(self, principal: str, host: str, operation: Operation,
                  resource_type: ResourceType, name: str) -> bool:
        """Whether ``principal`` from ``host`` may do ``operation`` on the resource."""
        if principal in self.super_users:
            return True
        on_resource = [acl for acl in self._by_type.get(resource_type, ())
                       if _pattern_applies(acl, name)]
        if not on_resource:
            return self.allow_if_no_acl
        allowed = False
        for acl in on_resource:
            if acl.principal not in (principal, "User:*") or acl.host not in (host, WILDCARD):
                continue
            if acl.permission is Permission.DENY:
                if acl.operation in (operation, Operation.ALL):
                    return False
            elif acl.operation in (operation, Operation.ALL) or \
                    acl.operation in _IMPLIED_BY.get(operation, ()):
                allowed = True
        return allowed

    def authorize_any(self, principal: str, host: str, operation: Operation,
                      resource_type: ResourceType) -> bool:
        """Whether some resource of this type could be allowed (ALLOW ACLs exist for the
        principal), as Kafka's authorizeByResourceType decides InitProducerId."""
        if principal in self.super_users:
            return True
        return any(acl.permission is Permission.ALLOW
                   and acl.principal in (principal, "User:*")
                   and acl.host in (host, WILDCARD)
                   and acl.operation in (operation, Operation.ALL)
                   for acl in self._by_type.get(resource_type, ()))
