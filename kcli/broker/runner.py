"""Run one broker process: bind, open the data, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket

from kcli.broker.broker import Broker, BrokerConfig, BrokerStartError
from kcli.broker.configs import Settings
from kcli.broker.fd_budget import connections_allowed, log_files_allowed, open_files_limit
from kcli.broker.handlers import Dispatcher
from kcli.broker.log.descriptors import descriptors
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


async def serve(config: BrokerConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when none is given).

    Raises BrokerStartError, naming the cause and the path or address, when it cannot
    start."""
    loop = asyncio.get_running_loop()
    open_files = raise_open_files_limit()
    descriptors.set_capacity(log_files_allowed(open_files))
    try:
        sock = bind(config.host, config.port)
    except OSError as error:
        where = f"{config.host}:{config.port}"
        raise BrokerStartError(f"cannot listen on {where}: {error.strerror or error}") from None
    port = int(sock.getsockname()[1])
    broker = Broker(config)
    try:
        broker.open(port)
    except OSError as error:
        sock.close()
        raise BrokerStartError(start_error(error)) from None
    except BaseException:
        sock.close()
        raise
    server = KafkaServer(Dispatcher(broker), server_limits(broker.settings, open_files))
    await server.start(sock)
    broker.start_background()
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    log.info(
        "broker %d ready, listening on %s:%d (cluster %s)",
        broker.node_id, config.host, port, broker.metadata.cluster_id,
    )
    try:
        await stop.wait()
        log.info("broker %d stopping", broker.node_id)
        await broker.shutdown()  # hand leadership over while clients can still ask us
    finally:
        await server.close()
        broker.close()
        log.info("broker %d stopped", broker.node_id)


def run(config: BrokerConfig) -> None:
    """Run a broker in this process, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
