"""A copy job: one source topic into one target topic, and its checkpoint.

A :class:`Job`'s progress is a checkpoint in the target cluster
(:mod:`kcli.backup.checkpoints`): per source partition the next source offset to copy,
per target partition the next target offset and how many map chunks are stored; the
exact offset map itself is stored in chunks of runs. The
:class:`~kcli.backup.copier.Copier` moves the records and keeps these states.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kcli.backup.checkpoints import Key
from kcli.backup.offsetmap import OffsetMap, Run
from kcli.errors import BadInput, OperationFailed

STATE_VERSION = 1
RUNS_PER_CHUNK = 20_000
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def topic_renames(values: Sequence[str], option: str, *, plain: bool) -> dict[str, str]:
    """``OLD=NEW`` values of ``option`` (and, where ``plain``, a bare ``OLD``: same name)
    -> {old: new}. A source named twice, two sources into one target, or a target name
    Kafka would refuse are bad input, found before anything is written."""
    form = "OLD or OLD=NEW" if plain else "OLD=NEW"
    out: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        old, new = old.strip(), new.strip()
        if not old or (sep and not new) or not (sep or plain):
            raise BadInput(f"{option} expects {form}, got {value!r}")
        if old in out:
            raise BadInput(f"{option} names {old!r} twice")
        target = new if sep else old
        if not _TOPIC_NAME.fullmatch(target) or target in {".", ".."}:
            raise BadInput(f"{option}: {target!r} is not a valid topic name (1 to 249 "
                           "ASCII letters, digits, '.', '_' and '-')")
        out[old] = target
    targets = list(out.values())
    if len(set(targets)) != len(targets):
        raise BadInput(f"{option} maps two topics to the same name")
    return out


@dataclass
class SourceState:
    """Progress on one source partition."""

    start: int
    """First source offset the job covers."""
    next: int
    """Next source offset to copy (durable as of the last checkpoint)."""
    end: int | None = None
    """Where this run stops (None: follow forever)."""


@dataclass
class TargetState:
    """Progress on one target partition."""

    partition: int
    base: int
    """Target offset where the job began writing."""
    next: int
    """Target offset after the last copied record."""
    records: int = 0
    chunks: int = 0
    persisted_runs: int = 0
    persisted_last: Run | None = None
    omap: OffsetMap | None = None
    pending: deque[int] = field(default_factory=deque)
    """Source offsets of the records sent and not yet reported, in order."""
    run_src: int = 0
    run_tgt: int = 0
    run_len: int = 0
    """The run being extended by delivery reports, not yet in ``omap``."""

    def close_run(self) -> None:
        """Move the open run into the map (it keeps growing there if the next record
        continues it)."""
        if self.run_len:
            if self.omap is not None:
                self.omap.add_run((self.run_src, self.run_tgt, self.run_len))
            self.run_len = 0


class Job:
    """One source topic copied into one target topic."""

    def __init__(self, kind: str, identity: Mapping[str, Any], source_topic: str,
                 target_topic: str, target_partitions: int,
                 sources: Mapping[int, SourceState], repartition: bool = False) -> None:
        self.kind = kind
        self.identity = dict(identity)
        self.source_topic = source_topic
        self.target_topic = target_topic
        self.target_partitions = target_partitions
        self.repartition = repartition
        self.initial = {p: SourceState(s.start, s.next, s.end) for p, s in sources.items()}
        """Where a new job starts each source partition, and where this run stops."""
        self.sources: dict[int, SourceState] = {
            p: SourceState(s.start, s.next, s.end) for p, s in sources.items()}
        self.targets: dict[int, TargetState] = {}
        self.topic_id: str | None = None
        self.resumed = False
        self.done = False
        self.log_append_time = 0
        self.held_configs: dict[str, str] | None = None
        """Timestamp configs of the target topic set aside while records are written
        (see :func:`~kcli.backup.copier.hold_timestamp_configs`); put back at the end."""
        self.sent = 0
        """Records sent by this run."""
        self.matched = 0
        """Records this run found already copied (written after the last checkpoint)."""

    @property
    def key(self) -> Key:
        """The checkpoint key of this job's state."""
        return {"kind": self.kind, **self.identity}

    def reset(self) -> None:
        """Forget a checkpoint that belongs to a topic that no longer exists (the target
        was deleted, or deleted and created again): start over."""
        fresh = Job(self.kind, self.identity, self.source_topic, self.target_topic,
                    self.target_partitions, self.initial, self.repartition)
        self.__dict__.update(fresh.__dict__)

    def chunk_key(self, partition: int, chunk: int) -> Key:
        """Key of one stored piece of a partition's offset map."""
        return {**self.key, "partition": partition, "chunk": chunk}

    def matches(self, key: Key) -> bool:
        """Whether a checkpoint record belongs to this job."""
        return all(key.get(k) == v for k, v in self.key.items())

    def state(self) -> dict[str, Any]:
        """The checkpoint value."""
        return {
            "version": STATE_VERSION, "topic_id": self.topic_id,
            "source_topic": self.source_topic, "target_topic": self.target_topic,
            "repartition": self.repartition, "done": self.done,
            "held_configs": self.held_configs,
            "updated_at": int(time.time() * 1000),
            "sources": {str(p): {"start": s.start, "next": s.next}
                        for p, s in sorted(self.sources.items())},
            "targets": {str(p): {"base": t.base, "next": t.next, "records": t.records,
                                 "chunks": t.chunks}
                        for p, t in sorted(self.targets.items())},
        }

    def restore_state(self, value: Mapping[str, Any],
                      chunks: Mapping[tuple[int, int], Sequence[Sequence[int]]]) -> None:
        """Load a checkpoint value (and the map chunks it declares)."""
        try:
            self.topic_id = value.get("topic_id")
            self.done = bool(value.get("done"))
            held = value.get("held_configs")
            self.held_configs = {str(k): str(v) for k, v in held.items()} if held else None
            for p, s in value["sources"].items():
                initial = self.initial.get(int(p))
                self.sources[int(p)] = SourceState(int(s["start"]), int(s["next"]),
                                                   initial.end if initial else None)
            for p, t in value["targets"].items():
                partition = int(p)
                state = TargetState(partition, int(t["base"]), int(t["next"]),
                                    int(t["records"]), int(t["chunks"]))
                if not self.repartition:
                    source = self.sources.get(partition)
                    start = source.start if source else state.base
                    state.omap = OffsetMap(start, start, state.base, state.next)
                    for index in range(state.chunks):
                        for run in chunks.get((partition, index), ()):
                            state.omap.add_run((int(run[0]), int(run[1]), int(run[2])))
                    state.persisted_runs = len(state.omap.runs)
                    state.persisted_last = state.omap.runs[-1] if state.omap.runs else None
                    if state.omap.records != state.records:
                        raise ValueError(f"partition {partition}: the stored map holds "
                                         f"{state.omap.records} records, the state says "
                                         f"{state.records}")
                self.targets[partition] = state
        except (KeyError, TypeError, ValueError) as error:
            raise OperationFailed(f"the checkpoint of {self.describe()} is unreadable "
                                  f"({error})") from None
        self.resumed = True

    def new_chunks(self) -> list[tuple[Key, Any]]:
        """Map pieces not stored yet (the last stored run again if it grew since)."""
        out: list[tuple[Key, Any]] = []
        for state in self.targets.values():
            state.close_run()
            omap = state.omap
            if omap is None or not omap.runs:
                continue
            runs = omap.runs
            begin = state.persisted_runs
            if begin and runs[begin - 1] != state.persisted_last:
                begin -= 1
            if begin >= len(runs):
                continue
            for i in range(begin, len(runs), RUNS_PER_CHUNK):
                piece = [list(r) for r in runs[i:i + RUNS_PER_CHUNK]]
                out.append((self.chunk_key(state.partition, state.chunks), {"runs": piece}))
                state.chunks += 1
            state.persisted_runs = len(runs)
            state.persisted_last = runs[-1]
        return out

    def maps(self) -> dict[int, OffsetMap]:
        """The offset map of every partition (1:1 jobs), bounded by the progress."""
        out = {}
        for p, state in self.targets.items():
            state.close_run()
            source = self.sources.get(p)
            if state.omap is None or source is None:
                continue
            out[p] = OffsetMap(source.start, source.next, state.base, state.next,
                               state.omap.runs)
        return out

    def describe(self) -> str:
        """Human name of the job."""
        if self.source_topic == self.target_topic:
            return f"{self.kind} of {self.source_topic}"
        return f"{self.kind} of {self.source_topic} into {self.target_topic}"

    @property
    def copied(self) -> int:
        """Records copied so far (all runs)."""
        return sum(t.records for t in self.targets.values())
