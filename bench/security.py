"""What TLS and SASL cost: one broker's PLAINTEXT and SASL_SSL listeners side by side.

    python bench/security.py [--megabytes 300] [--rounds 5] [--connections 20]

Starts one embedded broker (temp dir, free ports) with a PLAINTEXT listener and a
SASL_SSL one (a throwaway CA, SCRAM-SHA-512 and PLAIN users), then in every round,
alternating which goes first, produces MEGABYTES of 1 KB values with a confluent-kafka
Producer with default settings and reads them back with a default Consumer, over each
listener. Prints MB/s median (min-max) and the SASL_SSL/PLAINTEXT ratio (issue 15's
goal: TLS costs at most 40%, a ratio of 0.6 or more). Then the connection set-up time:
a new client until its first Metadata answer (TCP, TLS handshake, SASL exchange,
ApiVersions, Metadata), CONNECTIONS times each for PLAINTEXT, SASL_SSL with PLAIN and
SASL_SSL with SCRAM-SHA-512 (4096 iterations). Not a test: nothing asserts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.broker import MB, consume, create_topic, produce, spread  # noqa: E402
from tests.support.broker import BrokerProcess, free_port  # noqa: E402
from tests.support.certs import make_certificates  # noqa: E402

PASSWORD = "bench-Secret-1"


def start(workdir: Path) -> tuple[BrokerProcess, dict[str, dict[str, str]]]:
    """The broker, and client settings per way in."""
    certs = make_certificates(workdir)
    base = free_port(2)
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_bench="{PASSWORD}";')
    broker = BrokerProcess(workdir / "data", port=base, settings={
        "listeners": f"PLAINTEXT://127.0.0.1:{base},SASL_SSL://127.0.0.1:{base + 1}",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
        "ssl.keystore.location": str(certs.keystore)}).start()
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # outlives its future
    try:
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "bench", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
            PASSWORD.encode())])["bench"].result(10)
    except BaseException:
        broker.kill()
        raise
    secured = {"security.protocol": "sasl_ssl", "ssl.ca.location": str(certs.ca),
               "sasl.username": "bench", "sasl.password": PASSWORD,
               "bootstrap.servers": f"127.0.0.1:{base + 1}"}
    return broker, {
        "PLAINTEXT": {"bootstrap.servers": broker.bootstrap},
        "SASL_SSL SCRAM-SHA-512": {**secured, "sasl.mechanisms": "SCRAM-SHA-512"},
        "SASL_SSL PLAIN": {**secured, "sasl.mechanisms": "PLAIN"},
    }


def set_up_seconds(config: dict[str, str]) -> float:
    """A new client until its first Metadata answer."""
    from confluent_kafka.admin import AdminClient

    started = time.perf_counter()
    AdminClient({**config, "log_level": "0"}).list_topics(timeout=10)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kcli-security-bench-") as tmp:
        broker, ways = start(Path(tmp))
        try:
            compared = {"PLAINTEXT": ways["PLAINTEXT"],
                        "SASL_SSL": ways["SASL_SSL SCRAM-SHA-512"]}
            size, count = 1000, args.megabytes * MB // 1000
            rates: dict[tuple[str, str], list[float]] = {}
            for round_ in range(args.rounds):
                order = list(compared) if round_ % 2 == 0 else list(reversed(compared))
                for name in order:
                    config = compared[name]
                    bootstrap, extra = config["bootstrap.servers"], {
                        k: v for k, v in config.items() if k != "bootstrap.servers"}
                    topic = create_topic(broker.bootstrap, 4)
                    seconds = produce(bootstrap, topic, size, count, False, extra)
                    rates.setdefault((name, "produce"), []).append(count * size / seconds / MB)
                    seconds = consume(bootstrap, topic, count, 4, False, extra)
                    rates.setdefault((name, "consume"), []).append(count * size / seconds / MB)
            print(f"{args.megabytes} MB of 1 KB records, 4 partitions, default clients, "
                  f"{args.rounds} interleaved rounds; MB/s median (min-max)")
            print(f"{'':10}{'PLAINTEXT':>18}{'SASL_SSL':>18}{'ratio':>7}")
            for op in ("produce", "consume"):
                plain, secure = rates[("PLAINTEXT", op)], rates[("SASL_SSL", op)]
                ratio = statistics.median(secure) / statistics.median(plain)
                print(f"{op:10}{spread(plain):>18}{spread(secure):>18}{ratio:7.2f}")
            print(f"\nconnection set-up to the first Metadata answer, {args.connections} "
                  "each, interleaved; ms median (min-max)")
            times: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.connections):
                for name, config in ways.items():
                    times[name].append(set_up_seconds(config) * 1000)
            for name, values in times.items():
                print(f"{name:24}{statistics.median(values):8.1f} "
                      f"({min(values):.1f}-{max(values):.1f})")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
