"""Run one broker process: bind, open the data, serve until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket

from kcli.broker.broker import Broker, BrokerConfig
from kcli.broker.handlers import Dispatcher
from kcli.broker.server import KafkaServer

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


async def serve(config: BrokerConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM when none is given)."""
    loop = asyncio.get_running_loop()
    sock = bind(config.host, config.port)
    port = int(sock.getsockname()[1])
    broker = Broker(config)
    try:
        broker.open(port)
    except BaseException:
        sock.close()
        raise
    server = KafkaServer(Dispatcher(broker), broker.settings.get_int("socket.request.max.bytes"))
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


def raise_open_file_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit, as Kafka's operators do
    with ulimit: every partition keeps files open, every client a socket. Returns the
    limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as error:  # e.g. an infinite hard limit macOS refuses
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, error)
            return soft
        log.debug("open-file limit raised from %d to %d", soft, hard)
    return hard


def run(config: BrokerConfig) -> None:
    """Run a broker in this process, on uvloop where it is installed."""
    raise_open_file_limit()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
