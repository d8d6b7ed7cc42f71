"""What one dashboard refresh costs, next to its peers, in one run.

    python bench/tui_refresh.py [--topics 1000] [--groups 200] [--rounds 5]

Starts an embedded broker (port 0, temp dir), creates TOPICS one-partition topics with a
record each and GROUPS groups with committed offsets on 5 topics each, then times,
alternating in every round:

- refresh: ``KafkaService.refresh()``, what the dashboard's poller runs every interval
  (Metadata, batched ListOffsets, ListGroups, DescribeGroups + OffsetFetch per group,
  sizes every 5th refresh, then the snapshot model: rates, statuses, time lag);
- floor: the same questions through a bare confluent-kafka AdminClient, no model: the
  least any Python dashboard on this library pays;
- cli: ``kcli group list`` (a whole process: startup, every group's lag) and
  ``kcli topic list``, what a user would otherwise run in a loop;

and, on the UI thread of a headless app, how long rendering one snapshot takes: the
topics table first filled with every row, then updated in place, and the groups table.

Prints best and median of each and the refresh/floor ratio. Not a test: nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.broker import BrokerProcess, kcli_command, kcli_env  # noqa: E402

GROUP_TOPICS = 5


def setup(bootstrap: str, topics: int, groups: int) -> None:
    """TOPICS topics with one record each; GROUPS groups committed on 5 topics each."""
    from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [f"bench-{i:05d}" for i in range(topics)]
    for start in range(0, topics, 200):
        batch = [NewTopic(n, 1, 1) for n in names[start:start + 200]]
        for future in admin.create_topics(batch, operation_timeout=60).values():
            future.result(timeout=120)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for name in names:
        producer.produce(name, b"x" * 100)
    if producer.flush(120):
        raise SystemExit("records not delivered")
    futures = []
    for g in range(groups):
        tps = [TopicPartition(names[(g * GROUP_TOPICS + k) % topics], 0, 0)
               for k in range(GROUP_TOPICS)]
        request = ConsumerGroupTopicPartitions(f"bench-group-{g:04d}", tps)
        futures += list(admin.alter_consumer_group_offsets([request]).values())
    for future in futures:
        future.result(timeout=60)


def floor(bootstrap: str) -> Callable[[], None]:
    """The refresh's questions through a bare AdminClient (one, reused, like the app's)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def run() -> None:
        metadata = admin.list_topics(timeout=30)
        tps = [TopicPartition(t, p) for t, topic in metadata.topics.items()
               for p in topic.partitions]
        for spec in (OffsetSpec.earliest(), OffsetSpec.latest()):
            for future in admin.list_offsets(dict.fromkeys(tps, spec)).values():
                future.result(timeout=30)
        listed = admin.list_consumer_groups().result(timeout=30).valid
        ids = [g.group_id for g in listed]
        if ids:
            for future in admin.describe_consumer_groups(ids).values():
                future.result(timeout=30)
            offsets = [next(iter(admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g)]).values())) for g in ids]
            for future in offsets:
                future.result(timeout=30)

    return run


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def cli(bootstrap: str, *args: str) -> Callable[[], None]:
    argv = kcli_command("-b", bootstrap, "-o", "json", *args)

    def run() -> None:
        done = subprocess.run(argv, env=kcli_env(), capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: {done.stderr.decode()[-2000:]}")

    return run


def render_times(snapshots: list[Any]) -> dict[str, float]:
    """Seconds the UI thread spends rendering: topics first filled, then updated, and
    groups, in a headless app at 120x40."""
    from kcli.tui.app import KcliApp
    from kcli.tui.screens.main import GroupsView, MainScreen, TopicsView

    class Replay:
        """A service whose refresh never answers: the bench renders by hand."""

        bootstrap = "bench"

        def __init__(self) -> None:
            self.closed = threading.Event()

        def refresh(self) -> Any:
            self.closed.wait()
            raise RuntimeError("closed")

        def close(self) -> None:
            self.closed.set()

    out: dict[str, float] = {}

    async def main() -> None:
        app = KcliApp(Replay(), interval=3600)  # type: ignore[arg-type]
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, MainScreen)
            screen.show_tab("topics")
            await pilot.pause()
            topics = screen.query_one(TopicsView)
            out["topics first"] = timed(lambda: topics.show(snapshots[0]))
            await pilot.pause()
            updates = [timed(lambda s=s: topics.show(s)) for s in snapshots[1:]]  # type: ignore[misc]
            out["topics update"] = statistics.median(updates)
            screen.show_tab("groups")
            await pilot.pause()
            groups = screen.query_one(GroupsView)
            groups.show(snapshots[0])
            out["groups update"] = statistics.median(
                [timed(lambda s=s: groups.show(s)) for s in snapshots[1:]])  # type: ignore[misc]
            app.exit()

    asyncio.run(main())
    return out


def line(name: str, times: list[float], base: float | None = None) -> str:
    best, median = min(times), statistics.median(times)
    ratio = f"  = {best / base:4.2f}x floor" if base else ""
    return f"{name:28} best {best * 1000:8.1f} ms   median {median * 1000:8.1f} ms{ratio}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from kcli.tui.service import KafkaService

    with tempfile.TemporaryDirectory(prefix="kcli-bench-tui-") as tmp:
        broker = BrokerProcess(Path(tmp) / "broker").start()
        try:
            bootstrap = broker.bootstrap
            began = time.perf_counter()
            setup(bootstrap, args.topics, args.groups)
            print(f"broker {bootstrap}: {args.topics:,} topics, {args.groups:,} groups "
                  f"(set up in {time.perf_counter() - began:.1f} s); {args.rounds} rounds")
            service = KafkaService({"bootstrap.servers": bootstrap, "log_level": 0},
                                   timeout=60, interval=2.0)
            bare = floor(bootstrap)
            group_list, topic_list = cli(bootstrap, "group", "list"), cli(bootstrap, "topic",
                                                                          "list")
            service.refresh()  # connect and warm up both clients
            bare()
            refresh: list[float] = []
            model: list[float] = []
            floor_times: list[float] = []
            groups_cli: list[float] = []
            topics_cli: list[float] = []
            snapshots = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                sample = service.sample(service.cluster())
                fetched = time.perf_counter()
                snapshots.append(service.builder.add(sample))
                refresh.append(time.perf_counter() - started)
                model.append(time.perf_counter() - fetched)
                floor_times.append(timed(bare))
                groups_cli.append(timed(group_list))
                topics_cli.append(timed(topic_list))
            service.close()
            snap = snapshots[-1]
            assert len(snap.topics) >= args.topics, len(snap.topics)
            assert len(snap.groups) >= args.groups, len(snap.groups)
            base = min(floor_times)
            print(line("refresh (fetch + model)", refresh, base))
            print(line("  of which the model", model))
            print(line("floor: bare AdminClient", floor_times, base))
            print(line("kcli group list (process)", groups_cli, base))
            print(line("kcli topic list (process)", topics_cli, base))
            for name, seconds in render_times(snapshots).items():
                print(f"render {name:21} {seconds * 1000:8.1f} ms on the UI thread")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
