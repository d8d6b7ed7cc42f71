"""``python -m kcli.registry --bootstrap HOST:PORT --listen HOST:PORT``: the registry
process a local cluster starts (``kcli schema serve`` is the same for users)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from kcli.registry.http import log_to_stderr, serve


def main(argv: list[str] | None = None) -> int:
    """Run the registry until SIGTERM; exit 1 with one line when it cannot start."""
    parser = argparse.ArgumentParser(prog="python -m kcli.registry")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--listen", default="127.0.0.1:8081")
    parser.add_argument("--client-config", metavar="FILE",
                        help="librdkafka settings (a .properties file) for the connection "
                             "to the brokers: SASL, TLS")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    log_to_stderr()
    config: dict[str, object] = {"bootstrap.servers": args.bootstrap, "log_level": 0}
    if args.client_config:
        from kcli.broker.properties import PropertiesError, parse_properties

        try:
            with open(args.client_config, encoding="utf-8") as file:
                config.update(parse_properties(file.read()))
        except (OSError, PropertiesError) as error:
            print(f"schema registry failed: --client-config: {error}", file=sys.stderr)
            return 1
    try:
        asyncio.run(serve(config, host or "127.0.0.1", int(port), _ready))
    except Exception as error:
        print(f"schema registry failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def _ready(url: str) -> None:
    print(f"schema registry ready, serving {url}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
