"""SCRAM users and ACLs of any Kafka cluster, through confluent-kafka's AdminClient
(KIP-554's Describe/AlterUserScramCredentials; Describe/Create/DeleteAcls)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kcli.client.cluster import Cluster
from kcli.errors import BadInput, KcliError

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
RESOURCE_TYPES = ("topic", "group", "cluster", "transactional-id")
OPERATIONS = ("all", "read", "write", "create", "delete", "alter", "describe",
              "cluster-action", "describe-configs", "alter-configs", "idempotent-write")
PATTERNS = ("literal", "prefixed", "match", "any")
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True)
class UserCredentials:
    """A SCRAM user: its mechanisms and their iteration counts (never a secret)."""

    user: str
    mechanisms: tuple[tuple[str, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"user": self.user, "mechanisms": [
            {"mechanism": m, "iterations": i} for m, i in self.mechanisms]}


def _mechanism(name: str) -> Any:
    from confluent_kafka.admin import ScramMechanism

    normalised = name.strip().upper()
    if normalised not in MECHANISMS:
        raise BadInput(f"--mechanism: {name!r} is not one of {', '.join(MECHANISMS)}")
    return ScramMechanism[normalised.replace("-", "_")]


def list_users(cluster: Cluster, users: list[str] | None = None) -> list[UserCredentials]:
    """Every SCRAM user (or the named ones) with its mechanisms."""
    future = cluster.admin.describe_user_scram_credentials(users or None)
    if isinstance(future, dict):  # named users: one future each
        found = cluster.wait_all(future, "describing user")
        failure = next((v for v in found.values() if isinstance(v, KcliError)), None)
        if failure is not None:
            raise failure
    else:
        found = cluster.wait(future, "listing SCRAM users")
    return sorted((UserCredentials(user, tuple(sorted(
        (info.mechanism.name.replace("_", "-"), int(info.iterations))
        for info in description.scram_credential_infos)))
        for user, description in found.items()), key=lambda u: u.user)


def set_password(cluster: Cluster, user: str, mechanism: str, password: str,
                 iterations: int) -> None:
    """Create or replace a user's credential for one mechanism (the client salts the
    password; it never travels in clear)."""
    from confluent_kafka.admin import ScramCredentialInfo, UserScramCredentialUpsertion

    upsertion = UserScramCredentialUpsertion(
        user, ScramCredentialInfo(_mechanism(mechanism), iterations), password.encode())
    futures = cluster.admin.alter_user_scram_credentials([upsertion])
    cluster.wait(futures[user], f"setting {mechanism} for user {user}")


def delete_user(cluster: Cluster, user: str, mechanism: str | None) -> list[str]:
    """Delete one credential of a user, or every one; returns the mechanisms deleted.
    One request per mechanism: Kafka refuses two changes of one user in one request."""
    from confluent_kafka.admin import UserScramCredentialDeletion

    if mechanism is not None:
        wanted = [mechanism.strip().upper()]
        _mechanism(mechanism)
    else:
        known = list_users(cluster, [user])
        wanted = [m for m, _ in known[0].mechanisms] if known else []
    for name in wanted:
        futures = cluster.admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion(user, _mechanism(name))])
        cluster.wait(futures[user], f"deleting {name} of user {user}")
    return wanted


@dataclass(frozen=True)
class AclSpec:
    """An ACL (or a filter of them) in kafka-acls.sh's terms."""

    resource_type: str  # topic, group, cluster, transactional-id, or any (filters)
    name: str | None
    pattern: str  # literal, prefixed (and for filters: match, any)
    principal: str | None
    host: str | None
    operation: str  # an OPERATIONS name, or any (filters)
    permission: str  # allow, deny (and for filters: any)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (and the table row)."""
        return {"resource_type": self.resource_type, "name": self.name,
                "pattern": self.pattern, "principal": self.principal, "host": self.host,
                "operation": self.operation, "permission": self.permission}


def _enum(kind: Any, value: str) -> Any:
    return kind[value.upper().replace("-", "_")]


def _to_binding(spec: AclSpec, as_filter: bool) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    cls: Any = AclBindingFilter if as_filter else AclBinding  # None: any, in a filter
    return cls(_enum(ResourceType, spec.resource_type), spec.name,
               _enum(ResourcePatternType, spec.pattern), spec.principal, spec.host,
               _enum(AclOperation, spec.operation), _enum(AclPermissionType, spec.permission))


def _from_binding(binding: Any) -> AclSpec:
    return AclSpec(binding.restype.name.lower().replace("_", "-"), binding.name,
                   binding.resource_pattern_type.name.lower(), binding.principal,
                   binding.host, binding.operation.name.lower().replace("_", "-"),
                   binding.permission_type.name.lower())


def list_acls(cluster: Cluster, wanted: AclSpec) -> list[AclSpec]:
    """The ACLs a filter selects."""
    found = cluster.wait(cluster.admin.describe_acls(_to_binding(wanted, True)),
                         "listing ACLs")
    return sorted((_from_binding(b) for b in found),
                  key=lambda a: (a.resource_type, a.name or "", a.principal or "",
                                 a.operation))


def create_acls(cluster: Cluster, specs: list[AclSpec]) -> None:
    """Create ACLs; the first refusal is raised."""
    bindings = [_to_binding(spec, False) for spec in specs]
    results = cluster.wait_all(cluster.admin.create_acls(bindings), "creating ACL")
    failure = next((v for v in results.values() if isinstance(v, KcliError)), None)
    if failure is not None:
        raise failure


def delete_acls(cluster: Cluster, wanted: AclSpec) -> list[AclSpec]:
    """Delete every ACL a filter selects; returns them."""
    binding = _to_binding(wanted, True)
    deleted = cluster.wait(cluster.admin.delete_acls([binding])[binding], "deleting ACLs")
    return [_from_binding(b) for b in deleted]
