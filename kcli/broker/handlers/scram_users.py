"""DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554)."""

from __future__ import annotations

from typing import Any

from kcli.broker.cluster.controller import ControllerError
from kcli.broker.cluster.metadata import ClusterMetadata
from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.security import users
from kcli.broker.security.acls import CLUSTER_NAME, Operation, ResourceType


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS)
async def describe_user_scram_credentials(ctx: RequestContext, request: Any) -> Any:
    """Mechanisms and iterations of users' credentials (never the keys)."""
    if not ctx.allowed(Operation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return make(ctx.response_class(), throttle_time=0,
                    error_code=ErrorCode.cluster_authorization_failed,
                    error_message="Cluster DESCRIBE is needed", results=())
    ctx.broker.refresh_metadata()
    names = [u.name for u in request.users] if request.users else None
    info_cls = ctx.response_class("CredentialInfo")
    result_cls = ctx.response_class("DescribeUserScramCredentialsResult")
    results = tuple(
        make(result_cls, user=o.user, error_code=o.error, error_message=o.message,
             credential_infos=tuple(make(info_cls, mechanism=m, iterations=i)
                                    for m, i in o.credentials))
        for o in users.describe(ctx.broker.metadata, names))
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                error_message=None, results=results)


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS)
async def alter_user_scram_credentials(ctx: RequestContext, request: Any) -> Any:
    """Set and delete credentials, stored in the cluster metadata on every broker."""
    deletions = [(d.name, int(d.mechanism)) for d in request.deletions]
    upsertions = [users.Upsertion(u.name, int(u.mechanism), int(u.iterations), u.salt,
                                  u.salted_password) for u in request.upsertions]

    def change(metadata: ClusterMetadata) -> list[users.Outcome]:
        return users.alter(metadata, deletions, upsertions)

    result_cls = ctx.response_class("AlterUserScramCredentialsResult")

    def everyone(code: int, message: str) -> list[users.Outcome]:
        names = dict.fromkeys([n for n, _ in deletions] + [u.user for u in upsertions])
        return [users.Outcome(name, code, message) for name in names]

    if not ctx.allowed(Operation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME):
        outcomes = everyone(ErrorCode.cluster_authorization_failed, "Cluster ALTER is needed")
    else:
        try:
            outcomes = ctx.broker.controller.transact(change)
        except ControllerError as error:
            outcomes = everyone(error.error_code, error.message)
    results = tuple(make(result_cls, user=o.user, error_code=o.error, error_message=o.message)
                    for o in outcomes)
    return make(ctx.response_class(), throttle_time=0, results=results)
