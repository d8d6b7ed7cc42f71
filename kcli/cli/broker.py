"""`kcli broker`: run one embedded broker in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from kcli.cli.help import KcliCommand, help_settings
from kcli.errors import BadInput, OperationFailed

app = typer.Typer(help="Run an embedded Kafka-compatible broker.", no_args_is_help=True,
                  **help_settings())


def parse_host_port(value: str, option: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 hosts in brackets); raises BadInput."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadInput(f"{option} must be HOST:PORT, not {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def read_config_file(path: Path) -> dict[str, str]:
    """The settings of a server.properties file; BadInput names the file and line."""
    from kcli.broker.properties import PropertiesError, parse_properties

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise BadInput(f"--config-file {path}: {reason}") from None
    try:
        return {key.strip(): value.strip() for key, value in parse_properties(text).items()}
    except PropertiesError as error:
        raise BadInput(f"--config-file {path}: {error}") from None


def parse_settings(values: list[str]) -> dict[str, str]:
    """Turn repeated key=value options into a dict; raises BadInput."""
    settings: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"expected key=value, got {item!r}")
        settings[key.strip()] = value.strip()
    return settings


@app.command("run", cls=KcliCommand)
def run(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Directory for the broker's logs.")],
    node_id: Annotated[int, typer.Option("--node-id", min=0, help="This broker's id.")] = 1,
    listen: Annotated[str, typer.Option(
        "--listen", help="HOST:PORT to listen on (port 0 picks a free one).")] = "127.0.0.1:9092",
    advertise: Annotated[str | None, typer.Option(
        "--advertise", help="HOST to advertise to clients (default: the listen host).")] = None,
    cluster_dir: Annotated[Path | None, typer.Option(
        "--cluster-dir", help="Shared metadata directory of a local cluster.")] = None,
    config: Annotated[list[str] | None, typer.Option(
        "--config", "-c", help="Broker setting key=value (repeatable), e.g. num.partitions=3.",
    )] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config-file", metavar="FILE", dir_okay=False,
        help="Broker settings from a server.properties file (secrets belong there, not on "
             "the command line); -c settings win.")] = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="debug, info, warning or error.")] = "info",
) -> None:
    """Run one broker in the foreground until SIGINT or SIGTERM.

    Logs go to stderr."""
    from kcli.broker.broker import BrokerConfig, BrokerStartError
    from kcli.broker.configs import InvalidConfig, Settings
    from kcli.broker.runner import run as run_broker
    from kcli.broker.runner import start_error
    from kcli.broker.security.listeners import parse_listeners

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        raise BadInput(f"unknown log level {log_level!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = parse_host_port(listen, "--listen")
    settings = {**read_config_file(config_file), **parse_settings(config or [])} \
        if config_file is not None else parse_settings(config or [])
    try:
        parse_listeners(Settings(settings), host, port, host)  # settings and listeners
    except InvalidConfig as error:
        raise BadInput(str(error)) from None
    broker_config = BrokerConfig(
        node_id=node_id, data_dir=data_dir, host=host, port=port,
        advertised_host=advertise or (host if host not in ("0.0.0.0", "::") else "127.0.0.1"),
        cluster_dir=cluster_dir, settings=settings,
    )
    try:
        run_broker(broker_config)
    except BrokerStartError as error:
        raise OperationFailed(str(error)) from None
    except OSError as error:  # after start-up: the runner names start errors itself
        raise OperationFailed(start_error(error)) from None
