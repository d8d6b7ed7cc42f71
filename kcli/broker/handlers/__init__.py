"""Request handlers, one module per API family, and the dispatcher that frames them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kcli.broker.errors import ErrorCode
from kcli.broker.handlers import (  # noqa: F401  (imported to register their handlers)
    cluster,
    configs,
    consumer_groups,
    fetch,
    groups,
    metadata,
    offsets,
    produce,
    producers,
    reassignments,
    topics,
)
from kcli.broker.handlers.base import HANDLERS, RequestContext, make, response_module
from kcli.broker.protocol.codec import (
    MalformedRequest,
    RequestHeader,
    UnsupportedVersion,
    decode_request,
    encode_response,
    encode_response_buffers,
    response_type,
)
from kcli.broker.protocol.framing import Frame
from kcli.broker.protocol.versions import ApiKey
from kcli.broker.server import CloseConnection, ResponseFrame

if TYPE_CHECKING:
    from kcli.broker.broker import Broker

log = logging.getLogger("kcli.broker")


def _api_versions_fallback(header: RequestHeader) -> bytes:
    """Answer an ApiVersions we cannot parse with a v0 body and UNSUPPORTED_VERSION,
    listing what we serve, so the client retries with a version we know."""
    v0 = RequestHeader(ApiKey.API_VERSIONS, 0, header.correlation_id, header.client_id, False)
    response_cls = response_type(ApiKey.API_VERSIONS, 0)
    body = metadata.api_versions_body(
        response_cls, response_module(ApiKey.API_VERSIONS, 0).ApiVersion,
        ErrorCode.unsupported_version,
    )
    return encode_response(v0, body)


class Dispatcher:
    """Turns a request frame into a response frame using the registered handlers."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def __call__(self, frame: Frame, peer: str) -> ResponseFrame | None:
        """Handle one frame; raises CloseConnection when Kafka would close it."""
        try:
            header, request = decode_request(frame)
        except UnsupportedVersion as error:
            if error.header.api_key == ApiKey.API_VERSIONS:
                return _api_versions_fallback(error.header)
            raise CloseConnection(str(error)) from None
        except MalformedRequest as error:
            raise CloseConnection(str(error)) from None
        handler = HANDLERS.get(header.api_key)
        if handler is None:
            raise CloseConnection(f"no handler for api {header.api_key}")
        response = await handler(RequestContext(self.broker, header, peer), request)
        if response is None:
            return None
        return encode_response_buffers(header, response)


__all__ = ["HANDLERS", "Dispatcher", "make"]
