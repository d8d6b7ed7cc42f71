"""SCRAM users in the cluster metadata: lookup for logins, and the rules of
Describe/AlterUserScramCredentials (KIP-554) as Kafka applies them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kcli.broker.cluster.metadata import ClusterMetadata
from kcli.broker.errors import ErrorCode
from kcli.broker.security.scram import (
    MAX_ITERATIONS,
    MECHANISM_CODES,
    MIN_ITERATIONS,
    ScramCredential,
    credential_from_salted,
)

MECHANISM_NAMES = {code: name for name, code in MECHANISM_CODES.items()}


@dataclass(frozen=True)
class Outcome:
    """One user's result: an error code (0: none) and message."""

    user: str
    error: int = ErrorCode.none
    message: str | None = None
    credentials: tuple[tuple[int, int], ...] = ()
    """(mechanism code, iterations) of each credential (Describe)."""


def credential(metadata: ClusterMetadata, user: str, mechanism: str) -> ScramCredential | None:
    """The stored credential of a user for one mechanism."""
    doc = metadata.scram.get(user, {}).get(mechanism)
    return ScramCredential.from_json(doc) if doc is not None else None


def describe(metadata: ClusterMetadata, users: Sequence[str] | None) -> list[Outcome]:
    """Every user with credentials (``users`` None or empty), or the ones asked for."""
    def infos(user: str) -> tuple[tuple[int, int], ...]:
        return tuple((MECHANISM_CODES[m], int(c["iterations"]))
                     for m, c in sorted(metadata.scram.get(user, {}).items()))

    if not users:
        return [Outcome(user, credentials=infos(user)) for user in sorted(metadata.scram)]
    counts = Counter(users)
    outcomes = []
    for user in dict.fromkeys(users):
        if counts[user] > 1:
            outcomes.append(Outcome(user, ErrorCode.duplicate_resource,
                                    "Cannot describe SCRAM credentials for the same user "
                                    "twice in a single request"))
        elif not metadata.scram.get(user):
            outcomes.append(Outcome(user, ErrorCode.resource_not_found,
                                    "Attempt to describe a user credential that does not "
                                    "exist"))
        else:
            outcomes.append(Outcome(user, credentials=infos(user)))
    return outcomes


@dataclass(frozen=True)
class Upsertion:
    """A credential to set (the client salted the password)."""

    user: str
    mechanism: int
    iterations: int
    salt: bytes
    salted_password: bytes


def alter(metadata: ClusterMetadata, deletions: Sequence[tuple[str, int]],
          upsertions: Sequence[Upsertion]) -> list[Outcome]:
    """Apply what is valid, per user; every user named gets one outcome."""
    users = [name for name, _ in deletions] + [u.user for u in upsertions]
    counts = Counter(users)
    failed: dict[str, Outcome] = {}

    def fail(user: str, error: int, message: str) -> None:
        failed.setdefault(user, Outcome(user, error, message))

    for user, count in counts.items():
        if not user:
            fail(user, ErrorCode.unacceptable_credential, "Username must not be empty")
        elif count > 1:
            fail(user, ErrorCode.duplicate_resource,
                 "A user credential cannot be altered twice in the same request")
    for user, code in deletions:
        mechanism = MECHANISM_NAMES.get(code)
        if mechanism is None:
            fail(user, ErrorCode.unsupported_sasl_mechanism, f"Unknown SCRAM mechanism {code}")
        elif mechanism not in metadata.scram.get(user, {}):
            fail(user, ErrorCode.resource_not_found,
                 "Attempt to delete a user credential that does not exist")
    for upsertion in upsertions:
        mechanism = MECHANISM_NAMES.get(upsertion.mechanism)
        if mechanism is None:
            fail(upsertion.user, ErrorCode.unsupported_sasl_mechanism,
                 f"Unknown SCRAM mechanism {upsertion.mechanism}")
        elif not MIN_ITERATIONS <= upsertion.iterations <= MAX_ITERATIONS:
            fail(upsertion.user, ErrorCode.unacceptable_credential,
                 f"Iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, not "
                 f"{upsertion.iterations}")
        elif not upsertion.salt or not upsertion.salted_password:
            fail(upsertion.user, ErrorCode.unacceptable_credential,
                 "Salt and salted password must not be empty")
    for user, code in deletions:
        if user not in failed:
            mechanisms = metadata.scram[user]
            del mechanisms[MECHANISM_NAMES[code]]
            if not mechanisms:
                del metadata.scram[user]
    for upsertion in upsertions:
        if upsertion.user not in failed:
            mechanism = MECHANISM_NAMES[upsertion.mechanism]
            stored = credential_from_salted(mechanism, upsertion.salt,
                                            upsertion.salted_password, upsertion.iterations)
            metadata.scram.setdefault(upsertion.user, {})[mechanism] = stored.to_json()
    return [failed.get(user, Outcome(user)) for user in dict.fromkeys(users)]
