"""Run one broker process: bind, open the data, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kcli.broker.broker import Broker, BrokerConfig, BrokerStartError
from kcli.broker.configs import InvalidConfig, Settings
from kcli.broker.fd_budget import connections_allowed, log_files_allowed, open_files_limit
from kcli.broker.handlers import Dispatcher
from kcli.broker.log.descriptors import descriptors
from kcli.broker.memory import keep_freed_memory
from kcli.broker.security.inter_broker import inter_broker_login
from kcli.broker.security.listeners import Listener, parse_listeners
from kcli.broker.security.session import ListenerSecurity, Session
from kcli.broker.security.tls import ANONYMOUS, principal, server_context
from kcli.broker.server import KafkaServer, ServerLimits

log = logging.getLogger("kcli.broker")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port); OSError if busy."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def start_error(error: OSError) -> str:
    """One line naming what failed and where, for an OSError met while starting."""
    reason = error.strerror or str(error)
    if error.filename is not None:
        return f"cannot start the broker: {reason}: {os.fsdecode(error.filename)}"
    return f"cannot start the broker: {reason}"


def raise_open_files_limit() -> int | None:
    """Raise this process's soft limit on open files to its hard limit (what Kafka's
    users do with ``ulimit -n``); returns the limit now in force (None: no limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, error)
    return open_files_limit()


def server_limits(settings: Settings, open_files: int | None) -> ServerLimits:
    """The listener's limits from the broker settings; max.connections is also held
    to the connections' share of the open files limit (kcli.broker.fd_budget)."""
    max_connections = min(settings.get_int("max.connections"),
                          connections_allowed(open_files))
    return ServerLimits(
        max_frame_bytes=settings.get_int("socket.request.max.bytes"),
        queued_max_bytes=settings.get_int("queued.max.request.bytes"),
        max_connections=max_connections,
        max_connections_per_ip=settings.get_int("max.connections.per.ip"),
        idle_ms=settings.get_int("connections.max.idle.ms"),
        read_timeout_ms=settings.get_int("socket.request.read.timeout.ms"),
    )


def _quiet_tls_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A failed TLS handshake (a plaintext client, an untrusted certificate) is the
    client's problem: one log line naming the peer and why, not a traceback."""
    error = context.get("exception")
    if isinstance(error, ssl.SSLError | ConnectionError | TimeoutError):
        transport = context.get("transport")
        peer = transport.get_extra_info("peername") if transport is not None else None
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"
        log.warning("TLS with %s failed: %s", where,
                    getattr(error, "reason", None) or error or type(error).__name__)
        return
    loop.default_exception_handler(context)


@dataclass
class _Bound:
    listener: Listener
    sock: socket.socket
    tls: ssl.SSLContext | None
    security: ListenerSecurity


def _bind_listeners(config: BrokerConfig, settings: Settings) -> list[_Bound]:
    """Bind every listener (the inter-broker one first) and read its TLS and SASL
    settings; BrokerStartError names what is wrong."""
    advertised = config.advertised_host or config.host
    try:
        listeners = parse_listeners(settings, config.host, config.port, advertised)
    except InvalidConfig as error:
        raise BrokerStartError(f"cannot start the broker: {error}") from None
    bound: list[_Bound] = []
    try:
        for listener in listeners:
            try:
                tls = server_context(settings, listener) if listener.protocol.tls else None
                security = ListenerSecurity.from_settings(settings, listener)
            except InvalidConfig as error:
                raise BrokerStartError(f"cannot start the broker: {error}") from None
            try:
                sock = bind(listener.host, listener.port)
            except OSError as error:
                where = f"{listener.host}:{listener.port}"
                raise BrokerStartError(
                    f"cannot listen on {where}: {error.strerror or error}") from None
            bound.append(_Bound(listener.with_port(int(sock.getsockname()[1])), sock, tls,
                                security))
    except BaseException:
        for item in bound:
            item.sock.close()
        raise
    return bound


async def serve(config: BrokerConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when none is given).

    Raises BrokerStartError, naming the cause and the path or address, when it cannot
    start."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_tls_errors)
    open_files = raise_open_files_limit()
    keep_freed_memory()
    descriptors.set_capacity(log_files_allowed(open_files))
    try:
        settings = Settings(config.settings)
    except InvalidConfig as error:
        raise BrokerStartError(f"cannot start the broker: {error}") from None
    bound = _bind_listeners(config, settings)
    inter = bound[0].listener
    endpoints = {b.listener.name: (b.listener.advertised_host, b.listener.advertised_port)
                 for b in bound} if len(bound) > 1 or inter.name != "PLAINTEXT" else {}
    broker = Broker(config)
    try:
        broker.inter_broker_login = inter_broker_login(settings, inter)
    except InvalidConfig as error:
        for item in bound:
            item.sock.close()
        raise BrokerStartError(f"cannot start the broker: {error}") from None
    try:
        broker.open(inter.advertised_port, endpoints, inter.advertised_host)
    except OSError as error:
        for item in bound:
            item.sock.close()
        raise BrokerStartError(start_error(error)) from None
    except BaseException:
        for item in bound:
            item.sock.close()
        raise
    limits = server_limits(broker.settings, open_files)
    dispatcher = Dispatcher(broker)
    servers = []
    for item in bound:
        server = KafkaServer(dispatcher, limits, _sessions(item))
        await server.start(item.sock, item.tls)
        servers.append(server)
    broker.start_background()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    _freeze_startup_heap()
    log.info(
        "broker %d ready, listening on %s (cluster %s)", broker.node_id,
        ", ".join(f"{b.listener.name}://{b.listener.host}:{b.listener.port}" for b in bound),
        broker.metadata.cluster_id,
    )
    try:
        await stop.wait()
        log.info("broker %d stopping", broker.node_id)
        await broker.shutdown()  # hand leadership over while clients can still ask us
    finally:
        for server in servers:
            await server.close()
        broker.close()
        log.info("broker %d stopped", broker.node_id)


def _freeze_startup_heap() -> None:
    """Move what start-up left alive (modules, the CLI, the opened logs) out of the
    collector's sight: it lives as long as the broker. A full collection walked all of it,
    a 20-40 ms stall that every request in flight waited out (issue 18's p99).

    The price: a partition opened at start-up and deleted later frees what reference
    counting frees, but any cycle among its objects stays until the broker restarts; at
    most what start-up built, once."""
    gc.collect()
    gc.freeze()


def _sessions(item: _Bound) -> Callable[[str, asyncio.BaseTransport], Session]:
    def new_session(peer: str, transport: asyncio.BaseTransport) -> Session:
        who = principal(transport.get_extra_info("peercert")) if item.tls else ANONYMOUS
        return Session(item.listener, peer, item.security, principal=who)

    return new_session


def run(config: BrokerConfig) -> None:
    """Run a broker in this process, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
