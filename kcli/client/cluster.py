"""A connection to one Kafka cluster through confluent-kafka's public AdminClient.

:class:`Cluster` owns one AdminClient and waits on its futures while watching the
client's error events, so an unreachable cluster fails in milliseconds with a clear
message instead of after the full timeout. No typer or rich here: the TUI and the backup
tools use this layer too.

One Cluster may be shared by several threads (the dashboard's workers): the AdminClient
is thread-safe and created once under a lock, and :meth:`Cluster.abort` ends every wait
in progress at once, so a program can quit without waiting out a slow request.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from kcli.errors import ExitCode, KcliError, OperationFailed, Unreachable, from_kafka_error

T = TypeVar("T")

WATCH_EVERY = 0.02
"""Seconds between looks at the client's error events while waiting for an answer."""

# librdkafka error events that mean "give up now" before the cluster ever answered.
_FATAL_BEFORE_CONNECT = frozenset({"_ALL_BROKERS_DOWN", "_RESOLVE"})
_FATAL_ALWAYS = frozenset({"_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED",
                           "_INVALID_ARG", "_UNSUPPORTED_FEATURE"})

TRANSIENT_ERRORS = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_RESOLVE",
                              "_MSG_TIMED_OUT", "LEADER_NOT_AVAILABLE",
                              "NOT_LEADER_FOR_PARTITION", "_WAIT_COORD",
                              "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR"})
"""Error names a consume loop waits through (librdkafka reconnects, finds the new leader
or coordinator by itself); the client's :class:`ErrorWatch` says when to give up."""


class Aborted(KcliError):
    """A wait ended by :meth:`Cluster.abort` (the program is shutting down)."""

    exit_code = ExitCode.INTERRUPTED


class ErrorWatch:
    """An ``error_cb`` for any confluent-kafka client that remembers the event that
    should end the command: the cluster is unreachable, or authentication failed."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.connected = False
        self.fatal: KcliError | None = None
        self._last_transport: str | None = None

    def __call__(self, error: Any) -> None:
        name = error.name()
        if name in {"_TRANSPORT", "_RESOLVE"}:
            self._last_transport = error.str()
        if self.fatal is not None:
            return
        if name in _FATAL_ALWAYS or (hasattr(error, "fatal") and error.fatal()):
            self.fatal = OperationFailed(f"cannot connect to {self.bootstrap}: {error.str()}")
        elif name in _FATAL_BEFORE_CONNECT and not self.connected:
            detail = _short_transport(self._last_transport or error.str())
            self.fatal = Unreachable(f"cannot reach {self.bootstrap}: {detail}")

    def check(self) -> None:
        """Raise the remembered fatal error, if any."""
        if self.fatal is not None:
            raise self.fatal


def _short_transport(text: str) -> str:
    # '127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused
    #  (after 0ms in state CONNECT)' -> 'Connection refused'
    _head, sep, tail = text.partition(" failed: ")
    detail = tail if sep else text
    return detail.split(" (after ")[0].strip() or text


class Cluster:
    """One cluster, one AdminClient (created on first use), one timeout for every call."""

    def __init__(self, config: Mapping[str, Any], timeout: float = 30.0) -> None:
        self.config = dict(config)
        self.timeout = timeout
        self.bootstrap = str(self.config.get("bootstrap.servers", ""))
        self.watch = ErrorWatch(self.bootstrap)
        self._admin: Any = None
        self._lock = threading.Lock()
        self._aborted = threading.Event()

    @property
    def admin(self) -> Any:
        """The AdminClient."""
        if self._admin is None:
            with self._lock:
                if self._admin is None:
                    from confluent_kafka.admin import AdminClient

                    config = dict(self.config)
                    config.setdefault("error_cb", self.watch)
                    self._admin = AdminClient(config)
        return self._admin

    def abort(self) -> None:
        """Make every wait in progress, and every later one, raise :class:`Aborted`.
        Safe to call from any thread."""
        self._aborted.set()

    def _check_aborted(self) -> None:
        if self._aborted.is_set():
            raise Aborted(f"stopped waiting for {self.bootstrap}")

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout

    def _poll_until(self, futures: Collection[concurrent.futures.Future[Any]],
                    what: str) -> None:
        """Wait for every future: woken the moment the last one completes (librdkafka
        completes admin futures from its own thread), and every WATCH_EVERY seconds to
        serve error events and notice :meth:`abort`."""
        deadline = self._deadline()
        pending = [f for f in futures if not f.done()]
        while pending:
            self.admin.poll(0)
            self._check_aborted()
            self.watch.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unreachable(f"{what}: no answer from {self.bootstrap} in "
                                  f"{self.timeout:g}s")
            concurrent.futures.wait(pending, timeout=min(WATCH_EVERY, remaining))
            pending = [f for f in pending if not f.done()]
        self.admin.poll(0)

    def wait(self, future: concurrent.futures.Future[T], what: str) -> T:
        """The result of one admin future; Kafka errors become KcliErrors."""
        self._poll_until((future,), what)
        try:
            result = future.result()
        except Exception as error:
            raise from_kafka_error(error, what) from None
        self.watch.connected = True
        return result

    def wait_all(self, futures: Mapping[Any, concurrent.futures.Future[Any]],
                 what: str) -> dict[Any, Any]:
        """Wait for every future of a dict; values are results or the KcliError each
        raised (callers decide whether one failure fails the command)."""
        labels = ", ".join(_label(k) for k in futures)
        self._poll_until(list(futures.values()),
                         f"{what} {labels}".strip() if len(labels) <= 60 else what)
        results: dict[Any, Any] = {}
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except Exception as error:
                results[key] = from_kafka_error(error, f"{what} {_label(key)}".strip())
            else:
                self.watch.connected = True
        return results

    def metadata(self, topic: str | None = None) -> Any:
        """ClusterMetadata for every topic (or one), retried in short slices so that a
        dead cluster is noticed from the client's error events."""
        from confluent_kafka import KafkaException

        deadline = self._deadline()
        slice_ = 0.05  # short at first: a refused connection shows up in milliseconds
        while True:
            self._check_aborted()
            self.watch.check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Unreachable(f"no metadata from {self.bootstrap} in {self.timeout:g}s")
            try:
                result = self.admin.list_topics(topic=topic, timeout=min(slice_, remaining))
            except KafkaException as error:
                name = error.args[0].name() if error.args else ""
                if name in ("_TRANSPORT", "_TIMED_OUT"):
                    self.admin.poll(0)
                    slice_ = min(slice_ * 2, 1.0)
                    continue
                raise from_kafka_error(error, "metadata") from None
            self.watch.connected = True
            return result

    def request_timeout(self) -> float:
        """The ``request_timeout`` to pass to admin calls."""
        return self.timeout


def _label(key: Any) -> str:
    if isinstance(key, str):
        return key
    topic = getattr(key, "topic", None)
    partition = getattr(key, "partition", None)
    if topic is not None and partition is not None:
        return f"{topic}[{partition}]"
    name = getattr(key, "name", None) or getattr(key, "group_id", None)
    return str(name) if name is not None else ""
