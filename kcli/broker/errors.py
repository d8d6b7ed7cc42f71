"""Kafka's error codes: the one table the whole broker answers from.

kio generates ``ErrorCode`` from Kafka's own error table (``Errors.java``): every code
with its name and whether a client may retry it (``ErrorCode.x.retriable``). It is an
``IntEnum``, so a code compares equal to the plain int on the wire. Nothing in the broker
types an error number by hand.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

__all__ = ["ErrorCode"]
