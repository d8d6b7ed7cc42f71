"""InitProducerId: ids for idempotent producers."""

from __future__ import annotations

from typing import Any

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers.base import RequestContext, handles, make
from kcli.broker.protocol.versions import ApiKey


@handles(ApiKey.INIT_PRODUCER_ID)
async def init_producer_id(ctx: RequestContext, request: Any) -> Any:
    """A fresh producer id at epoch 0 (as Kafka does for every non-transactional producer)."""
    if request.transactional_id is not None:
        # Transactions are not served (and not advertised); say so rather than pretend.
        return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.invalid_request,
                    producer_id=-1, producer_epoch=-1)
    producer_id = ctx.broker.allocate_producer_id()
    return make(ctx.response_class(), throttle_time=0, error_code=ErrorCode.none,
                producer_id=producer_id, producer_epoch=0)
