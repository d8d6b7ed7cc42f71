"""The authorizer's rules, as Kafka's StandardAuthorizer decides them, and the filters of
Describe/DeleteAcls."""

from __future__ import annotations

import pytest

from kcli.broker.security.acls import (
    Acl,
    AclFilter,
    Authorizer,
    InvalidAcl,
)
from kcli.broker.security.acls import Operation as Op
from kcli.broker.security.acls import PatternType as Pat
from kcli.broker.security.acls import Permission as Perm
from kcli.broker.security.acls import ResourceType as Res

ALICE, BOB = "User:alice", "User:bob"


def acl(name: str, operation: Op, permission: Perm = Perm.ALLOW, principal: str = ALICE,
        pattern: Pat = Pat.LITERAL, host: str = "*", kind: Res = Res.TOPIC) -> Acl:
    return Acl(kind, name, pattern, principal, host, operation, permission)


@pytest.mark.parametrize(("acls", "principal", "operation", "name", "allowed"), [
    ([acl("a", Op.READ)], ALICE, Op.READ, "a", True),
    ([acl("a", Op.READ)], ALICE, Op.READ, "b", False),  # no ACL on b, default deny
    ([acl("a", Op.READ)], BOB, Op.READ, "a", False),  # an ACL on a, none for bob
    ([acl("a", Op.READ)], ALICE, Op.WRITE, "a", False),
    ([acl("a", Op.READ)], ALICE, Op.DESCRIBE, "a", True),  # READ implies DESCRIBE
    ([acl("a", Op.ALTER_CONFIGS)], ALICE, Op.DESCRIBE_CONFIGS, "a", True),
    ([acl("a", Op.DESCRIBE)], ALICE, Op.READ, "a", False),  # not the other way round
    ([acl("a", Op.ALL)], ALICE, Op.DELETE, "a", True),
    ([acl("a", Op.READ), acl("a", Op.READ, Perm.DENY)], ALICE, Op.READ, "a", False),
    ([acl("a", Op.ALL), acl("a", Op.ALL, Perm.DENY, "User:*")], ALICE, Op.READ, "a", False),
    ([acl("a", Op.READ), acl("a", Op.READ, Perm.DENY)], ALICE, Op.DESCRIBE, "a", True),
    ([acl("orders-", Op.READ, pattern=Pat.PREFIXED)], ALICE, Op.READ, "orders-eu", True),
    ([acl("orders-", Op.READ, pattern=Pat.PREFIXED)], ALICE, Op.READ, "order", False),
    ([acl("*", Op.READ)], ALICE, Op.READ, "anything", True),
    ([acl("a", Op.READ, principal="User:*")], BOB, Op.READ, "a", True),
    ([acl("a", Op.READ, host="10.0.0.1")], ALICE, Op.READ, "a", False),
    ([acl("a", Op.READ, host="127.0.0.1")], ALICE, Op.READ, "a", True),
    ([acl("a", Op.READ, kind=Res.GROUP)], ALICE, Op.READ, "a", False),  # a group, not a topic
])
def test_decisions(acls: list[Acl], principal: str, operation: Op, name: str,
                   allowed: bool) -> None:
    authorizer = Authorizer(acls)
    assert authorizer.authorize(principal, "127.0.0.1", operation, Res.TOPIC, name) is allowed


def test_super_users_and_the_no_acl_default() -> None:
    deny_all = [acl("a", Op.ALL, Perm.DENY, "User:*")]
    assert Authorizer(deny_all, ["User:admin"]).authorize("User:admin", "h", Op.DELETE,
                                                          Res.TOPIC, "a")
    open_default = Authorizer(deny_all, allow_if_no_acl=True)
    assert open_default.authorize(ALICE, "h", Op.READ, Res.TOPIC, "no-acls-here")
    assert not open_default.authorize(ALICE, "h", Op.READ, Res.TOPIC, "a")


def test_any_topic_write_for_idempotence() -> None:
    authorizer = Authorizer([acl("x-", Op.WRITE, pattern=Pat.PREFIXED)])
    assert authorizer.authorize_any(ALICE, "h", Op.WRITE, Res.TOPIC)
    assert not authorizer.authorize_any(BOB, "h", Op.WRITE, Res.TOPIC)


def test_filters() -> None:
    acls = [acl("orders-", Op.READ, pattern=Pat.PREFIXED), acl("orders-eu", Op.WRITE),
            acl("*", Op.DESCRIBE), acl("g", Op.READ, kind=Res.GROUP, principal=BOB)]
    def names(wanted: AclFilter) -> list[str]:
        return [a.name for a in acls if wanted.matches(a)]

    assert names(AclFilter()) == ["orders-", "orders-eu", "*", "g"]
    assert names(AclFilter(Res.TOPIC, "orders-eu")) == ["orders-eu"]  # ANY: that name only
    assert names(AclFilter(Res.TOPIC, "orders-eu", Pat.MATCH)) == ["orders-", "orders-eu", "*"]
    assert names(AclFilter(pattern=Pat.PREFIXED)) == ["orders-"]
    assert names(AclFilter(principal=BOB)) == ["g"]
    assert names(AclFilter(operation=Op.WRITE)) == ["orders-eu"]


@pytest.mark.parametrize(("bad", "message"), [
    (acl("a", Op.ANY), "ANY"),
    (acl("a", Op.READ, pattern=Pat.MATCH), "MATCH"),
    (acl("", Op.READ), "empty"),
    (acl("a", Op.READ, principal="alice"), "TYPE:NAME"),
    (acl("other", Op.ALTER, kind=Res.CLUSTER), "kafka-cluster"),
])
def test_what_cannot_be_created(bad: Acl, message: str) -> None:
    with pytest.raises(InvalidAcl, match=message):
        bad.check()


def test_json_round_trip() -> None:
    one = acl("orders-", Op.READ, Perm.DENY, pattern=Pat.PREFIXED)
    assert Acl.from_json(one.to_json()) == one
