"""`kcli acl`: create, list and delete ACLs, with kafka-acls.sh's options.

    kcli acl create --allow-principal User:alice --operation read --topic orders
    kcli acl create --allow-principal User:app --operation write --topic orders- \\
        --resource-pattern-type prefixed
    kcli acl list --principal User:alice
    kcli acl delete --topic orders --principal User:alice

A delete that matches more than one ACL shows them and asks first (--yes skips it;
without a terminal it refuses), as kafka-acls.sh does.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kcli.cli.common import connect, emit, report
from kcli.cli.help import help_settings
from kcli.cli.options import command, say
from kcli.config import Options
from kcli.errors import BadInput
from kcli.output.model import Column, Result, Table

app = typer.Typer(help="ACLs: create, list, delete (kafka-acls.sh's options).",
                  no_args_is_help=True, **help_settings())

Topic = Annotated[str | None, typer.Option("--topic", metavar="TOPIC", help="A topic.")]
Group = Annotated[str | None, typer.Option("--group", metavar="GROUP", help="A group.")]
TxnId = Annotated[str | None, typer.Option("--transactional-id", metavar="ID",
                                           help="A transactional id.")]
ClusterFlag = Annotated[bool, typer.Option("--cluster", help="The cluster resource.")]
Pattern = Annotated[str | None, typer.Option(
    "--resource-pattern-type", metavar="literal|prefixed|match|any",
    help="How the name matches [create: literal; list/delete: any].")]
Operations = Annotated[list[str] | None, typer.Option(
    "--operation", metavar="OPERATION",
    help="read, write, create, delete, alter, describe, cluster-action, describe-configs, "
         "alter-configs, idempotent-write or all (repeatable).")]
Host = Annotated[str | None, typer.Option("--host", metavar="HOST",
                                          help="Client address [create: *].")]

_COLUMNS = (Column("permission", "PERMISSION"), Column("principal", "PRINCIPAL"),
            Column("host", "HOST"), Column("operation", "OPERATION"),
            Column("resource_type", "RESOURCE"), Column("name", "NAME"),
            Column("pattern", "PATTERN"))


def _resource(topic: str | None, group: str | None, txn: str | None, cluster: bool,
              required: bool) -> tuple[str, str | None]:
    from kcli.client.security import CLUSTER_NAME

    given = [(kind, name) for kind, name in (("topic", topic), ("group", group),
                                             ("transactional-id", txn)) if name is not None]
    if cluster:
        given.append(("cluster", CLUSTER_NAME))
    if len(given) > 1:
        raise BadInput("give one of --topic, --group, --transactional-id, --cluster")
    if not given:
        if required:
            raise BadInput("which resource? give --topic, --group, --transactional-id or "
                           "--cluster")
        return "any", None
    return given[0]


def _operations(values: list[str] | None, default: str) -> list[str]:
    from kcli.client.security import OPERATIONS

    chosen = [v.strip().lower().replace("_", "-") for v in values or [default]]
    for value in chosen:
        if value not in (*OPERATIONS, "any"):
            raise BadInput(f"--operation: {value!r} is not one of {', '.join(OPERATIONS)}")
    return chosen


def _pattern(value: str | None, default: str, allowed: tuple[str, ...]) -> str:
    chosen = (value or default).lower()
    if chosen not in allowed:
        raise BadInput(f"--resource-pattern-type: {chosen!r} is not one of "
                       f"{', '.join(allowed)}")
    return chosen


def _principal(value: str, option: str) -> str:
    kind, sep, name = value.partition(":")
    if not sep or not kind or not name:
        raise BadInput(f"{option}: {value!r} is not TYPE:NAME (User:alice)")
    return value


def _table(acls: list[dict[str, object]], empty: str) -> Result:
    return Result(acls, (Table(_COLUMNS, acls, empty=empty),))


@command(app, "create")
def create(
    opts: Options,
    allow_principal: Annotated[list[str] | None, typer.Option(
        "--allow-principal", metavar="TYPE:NAME", help="Principal to allow (repeatable).")
    ] = None,
    deny_principal: Annotated[list[str] | None, typer.Option(
        "--deny-principal", metavar="TYPE:NAME", help="Principal to deny (repeatable).")
    ] = None,
    operation: Operations = None,
    topic: Topic = None, group: Group = None, transactional_id: TxnId = None,
    cluster: ClusterFlag = False, resource_pattern_type: Pattern = None, host: Host = None,
) -> None:
    """Create ACLs: every principal given, for every operation, on one resource."""
    from kcli.client.security import AclSpec, create_acls

    kind, name = _resource(topic, group, transactional_id, cluster, required=True)
    pattern = _pattern(resource_pattern_type, "literal", ("literal", "prefixed"))
    operations = _operations(operation, "all")
    if "any" in operations:
        raise BadInput("--operation any selects ACLs; an ACL needs a real operation")
    grants = [(_principal(p, "--allow-principal"), "allow") for p in allow_principal or ()]
    grants += [(_principal(p, "--deny-principal"), "deny") for p in deny_principal or ()]
    if not grants:
        raise BadInput("give --allow-principal or --deny-principal")
    specs = [AclSpec(kind, name, pattern, principal, host or "*", op, permission)
             for principal, permission in grants for op in operations]
    create_acls(connect(opts), specs)
    rows = [s.to_dict() for s in specs]
    report(opts, "\n".join(f"created: {r['permission']} {r['principal']} {r['operation']} "
                           f"on {r['resource_type']} {r['name']} ({r['pattern']})"
                           for r in rows), {"created": rows})


def _filter(topic: str | None, group: str | None, txn: str | None, cluster: bool,
            pattern: str | None, principal: str | None, host: str | None,
            operation: list[str] | None, permission: str | None) -> object:
    from kcli.client.security import AclSpec

    kind, name = _resource(topic, group, txn, cluster, required=False)
    operations = _operations(operation, "any")
    if len(operations) > 1:
        raise BadInput("--operation: give one to filter by")
    chosen = (permission or "any").lower()
    if chosen not in ("allow", "deny", "any"):
        raise BadInput(f"--permission: {chosen!r} is not allow, deny or any")
    return AclSpec(kind, name, _pattern(pattern, "any", ("literal", "prefixed", "match", "any")),
                   _principal(principal, "--principal") if principal else None, host,
                   operations[0], chosen)


PrincipalFilter = Annotated[str | None, typer.Option(
    "--principal", metavar="TYPE:NAME", help="Only this principal's ACLs.")]
PermissionFilter = Annotated[str | None, typer.Option(
    "--permission", metavar="allow|deny", help="Only ALLOW or DENY ACLs.")]


@command(app, "list")
def list_(
    opts: Options, topic: Topic = None, group: Group = None, transactional_id: TxnId = None,
    cluster: ClusterFlag = False, resource_pattern_type: Pattern = None,
    principal: PrincipalFilter = None, host: Host = None, operation: Operations = None,
    permission: PermissionFilter = None,
) -> None:
    """ACLs, all or those the filters select (--resource-pattern-type match: every ACL
    that applies to the named resource, prefixed and * ones too)."""
    from kcli.client.security import AclSpec, list_acls

    wanted = _filter(topic, group, transactional_id, cluster, resource_pattern_type,
                     principal, host, operation, permission)
    assert isinstance(wanted, AclSpec)
    found = [a.to_dict() for a in list_acls(connect(opts), wanted)]
    emit(opts, _table(found, "(no ACLs)"))


@command(app, "delete")
def delete(
    opts: Options, topic: Topic = None, group: Group = None, transactional_id: TxnId = None,
    cluster: ClusterFlag = False, resource_pattern_type: Pattern = None,
    principal: PrincipalFilter = None, host: Host = None, operation: Operations = None,
    permission: PermissionFilter = None,
    yes: Annotated[bool, typer.Option("--yes", "-y",
                                      help="Do not ask when several ACLs match.")] = False,
) -> None:
    """Delete the ACLs the filters select; asks first when more than one matches."""
    from kcli.client.security import AclSpec, delete_acls, list_acls

    wanted = _filter(topic, group, transactional_id, cluster, resource_pattern_type,
                     principal, host, operation, permission)
    assert isinstance(wanted, AclSpec)
    cluster_ = connect(opts)
    matching = list_acls(cluster_, wanted)
    if not matching:
        say(opts, "no ACL matches; nothing deleted")
        report(opts, "", {"deleted": []})
        return
    if len(matching) > 1 and not yes:
        if not sys.stdin.isatty():
            raise BadInput(f"{len(matching)} ACLs match; refusing to delete them without "
                           "confirmation: stdin is not a terminal (pass --yes)")
        emit(opts, _table([a.to_dict() for a in matching], ""))
        if not typer.confirm(f"Delete these {len(matching)} ACLs?", default=False, err=True):
            say(opts, "nothing deleted")
            raise typer.Exit(1)
    deleted = [a.to_dict() for a in delete_acls(cluster_, wanted)]
    report(opts, "\n".join(f"deleted: {r['permission']} {r['principal']} {r['operation']} "
                           f"on {r['resource_type']} {r['name']} ({r['pattern']})"
                           for r in deleted), {"deleted": deleted})
