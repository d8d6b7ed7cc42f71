"""Completion: the committed scripts, and the candidates kcli prints when a shell asks.

Most tests call the entry point exactly as the scripts do: ``_KCLI_COMPLETE=complete_<shell>``
and ``KCLI_COMP_LINE`` (the line up to the cursor) in the environment. The shells
themselves are driven in test_shells.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcli.cli import completion
from kcli.cli.docs import Node, is_argument, root_node
from tests.support.broker import REPO_ROOT, BrokerProcess, free_port, kcli_command

SHELLS = completion.SHELLS


def ask(env: dict[str, str], line: str, shell: str = "bash", timeout: float = 20) -> list[str]:
    """What kcli answers a shell completing ``line``; it must exit 0 and say nothing
    on stderr."""
    env = dict(env, _KCLI_COMPLETE=f"complete_{shell}", KCLI_COMP_LINE=line)
    done = subprocess.run(kcli_command(), env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [line for line in done.stdout.splitlines() if line]


def values(lines: list[str]) -> list[str]:
    """The candidates of bash-format lines (``plain,VALUE``)."""
    return [line.split(",", 1)[1] for line in lines if line.startswith("plain,")]


def kcli_ok(env: dict[str, str], *args: str, input: bytes = b"") -> None:
    done = subprocess.run(kcli_command(*args), env=env, input=input, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def names(broker: BrokerProcess, kcli_bin: Path,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two topics sharing a unique prefix, and a consumer group, on the session broker."""
    from tests.support.broker import kcli_env

    env = kcli_env()
    env["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    env["KCLI_STATE_DIR"] = str(tmp_path_factory.mktemp("state"))
    prefix = f"cmp-{uuid.uuid4().hex[:8]}"
    made = {"prefix": prefix, "orders": f"{prefix}-orders", "events": f"{prefix}-events",
            "group": f"{prefix}-billing"}
    b = ("-b", broker.bootstrap)
    kcli_ok(env, *b, "topic", "create", made["orders"], "-P", "2")
    kcli_ok(env, *b, "topic", "create", made["events"])
    kcli_ok(env, *b, "produce", made["orders"], input=b"one\n")
    kcli_ok(env, *b, "consume", made["orders"], "-g", made["group"], "-n", "1")
    return made


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_script_is_what_kcli_completion_prints(shell: str,
                                                          user_env: dict[str, str]) -> None:
    committed = (REPO_ROOT / "completions" / f"kcli.{shell}").read_text("utf-8")
    done = subprocess.run(kcli_command("completion", shell), env=user_env,
                          capture_output=True, text=True, check=True)
    assert done.stdout == committed == completion.script(shell)


def test_a_script_asks_the_kcli_on_path_with_the_documented_variables() -> None:
    for shell in SHELLS:
        text = completion.script(shell)
        assert "_KCLI_COMPLETE=complete_" + shell in text
        assert completion.LINE_VAR in text
        assert "kcli completion " + shell in text  # says how it was made and installed


# --------------------------------------------------------------------------- the app's own tree


def test_subcommands_and_options_complete(user_env: dict[str, str]) -> None:
    assert values(ask(user_env, "kcli to")) == ["topic"]
    top = values(ask(user_env, "kcli "))
    assert {"topic", "group", "cluster", "produce", "consume", "completion"} <= set(top)
    assert values(ask(user_env, "kcli topic delete")) == ["delete", "delete-records"]
    assert values(ask(user_env, "kcli consume --fo")) == ["--follow", "--format-string",
                                                         "--format"]
    assert values(ask(user_env, "kcli --boot")) == ["--bootstrap"]
    assert values(ask(user_env, "kcli completion ")) == list(SHELLS)


def test_lowercase_alternatives_of_a_metavar_complete(user_env: dict[str, str]) -> None:
    assert values(ask(user_env, "kcli topic list -o ")) == ["table", "json", "jsonl"]
    assert values(ask(user_env, "kcli consume t -f a")) == ["avro"]
    # only the literal words of "earliest|latest|OFFSET|TIME|shift:N"
    assert values(ask(user_env, "kcli group reset g --to ")) == ["earliest", "latest"]


def test_paths_complete_as_files_or_directories(user_env: dict[str, str]) -> None:
    assert ask(user_env, "kcli produce t --file ") == ["file,"]
    assert ask(user_env, "kcli cluster start --data-dir ") == ["dir,"]
    # a plain argument with nothing to offer completes nothing (no file names either)
    assert ask(user_env, "kcli topic add-partitions t ") == []


def test_descriptions_go_to_zsh_and_fish(user_env: dict[str, str]) -> None:
    zsh = ask(user_env, "kcli to", shell="zsh")
    assert len(zsh) == 1, zsh
    assert zsh[0].startswith("plain\ttopic\tList, describe"), zsh
    assert ask(user_env, "kcli to", shell="fish") == zsh


def test_option_values_after_equals(user_env: dict[str, str]) -> None:
    # bash splits "--output=js" at "=" and replaces only "js"
    assert values(ask(user_env, "kcli topic list --output=js")) == ["json", "jsonl"]
    # zsh moves "--output=" aside itself; fish matches whole tokens
    assert ask(user_env, "kcli topic list --output=js", "zsh") == ["plain\tjson\t",
                                                                   "plain\tjsonl\t"]
    assert ask(user_env, "kcli topic list --output=js", "fish") == [
        "plain\t--output=json\t", "plain\t--output=jsonl\t"]
    assert ask(user_env, "kcli produce t --file=./d", "fish") == ["file\t--file=\t./d"]


def test_profiles_complete_from_the_config_file(user_env: dict[str, str]) -> None:
    for name in ("prod", "staging"):
        kcli_ok(user_env, "profile", "add", name, "-b", "kafka:9092")
    assert values(ask(user_env, "kcli profile use ")) == ["prod", "staging"]
    assert values(ask(user_env, "kcli -p st")) == ["staging"]
    assert values(ask(user_env, "kcli topic list --profile ")) == ["prod", "staging"]


def test_a_broken_line_completes_nothing_quietly(user_env: dict[str, str]) -> None:
    assert ask(user_env, "kcli nosuchcommand ") == []
    assert ask(user_env, "kcli consume 'unterminated") == []
    assert ask(user_env, "kcli -p missing-profile consume ") == []


# --------------------------------------------------------------------------- the cluster


def test_topics_complete_from_the_bootstrap_on_the_line(names: dict[str, str],
                                                        bootstrap: str,
                                                        user_env: dict[str, str]) -> None:
    prefix = names["prefix"]
    both = sorted([names["events"], names["orders"]])
    assert values(ask(user_env, f"kcli -b {bootstrap} consume {prefix}")) == both
    assert values(ask(user_env, f"kcli consume -b {bootstrap} {prefix}-o")) == [names["orders"]]
    assert values(ask(user_env, f"kcli topic describe --bootstrap={bootstrap} {prefix}")) == both
    # every TOPIC, arguments and options alike
    assert values(ask(user_env, f"kcli -b {bootstrap} group reset g -t {prefix}-e")) == [
        names["events"]]
    assert values(ask(user_env, f"kcli -b {bootstrap} topic delete x {prefix}-e")) == [
        names["events"]]
    # `kcli backup T..` is `kcli backup run T..`: topics and subcommands both complete
    assert values(ask(user_env, f"kcli -b {bootstrap} backup {prefix}-o")) == [names["orders"]]
    assert values(ask(user_env, f"kcli -b {bootstrap} backup x {prefix}-e")) == [
        names["events"]]
    assert {"ls", "verify", names["orders"]} <= set(
        values(ask(user_env, f"kcli -b {bootstrap} backup ")))


def test_internal_topics_only_when_asked_for(names: dict[str, str], bootstrap: str,
                                             user_env: dict[str, str]) -> None:
    assert not any(v.startswith("__")
                   for v in values(ask(user_env, f"kcli -b {bootstrap} consume ")))
    assert "__consumer_offsets" in values(ask(user_env, f"kcli -b {bootstrap} consume __"))


def test_topics_complete_from_environment_profile_and_local_cluster(
        names: dict[str, str], broker: BrokerProcess, user_env: dict[str, str]) -> None:
    line = f"kcli consume {names['prefix']}-o"
    assert values(ask(user_env, line)) == []  # nothing at localhost:9092... or not ours
    env = dict(user_env, KCLI_BOOTSTRAP=broker.bootstrap)
    assert values(ask(env, line)) == [names["orders"]]

    kcli_ok(user_env, "profile", "add", "session", "-b", broker.bootstrap)
    assert values(ask(user_env, f"kcli -p session consume {names['prefix']}-o")) == [
        names["orders"]]
    assert values(ask(dict(user_env, KCLI_PROFILE="session"), line)) == [names["orders"]]

    # a running local cluster, as `kcli cluster start` records it
    assert broker.process is not None
    state = Path(user_env["KCLI_STATE_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    (state / "cluster.json").write_text(json.dumps({
        "bootstrap": broker.bootstrap, "data_dir": str(broker.data_dir),
        "brokers": [{"node_id": 1, "port": broker.port, "pid": broker.process.pid}]}))
    assert values(ask(user_env, line)) == [names["orders"]]


def test_groups_complete_from_the_cluster(names: dict[str, str], bootstrap: str,
                                          user_env: dict[str, str]) -> None:
    group = names["group"]
    assert values(ask(user_env, f"kcli -b {bootstrap} group lag {names['prefix']}")) == [group]
    assert values(ask(user_env, f"kcli -b {bootstrap} group describe {group[:-2]}")) == [group]
    assert values(ask(user_env, f"kcli -b {bootstrap} consume t -g {names['prefix']}")) == [
        group]



def test_a_dead_cluster_completes_nothing_at_once(user_env: dict[str, str]) -> None:
    started = time.monotonic()
    assert ask(user_env, f"kcli -b 127.0.0.1:{free_port()} consume ") == []
    assert ask(user_env, f"kcli -b 127.0.0.1:{free_port()} group lag ") == []
    # refused connections are noticed in milliseconds, not after the timeout
    assert time.monotonic() - started < 2 * completion.TIMEOUT + 3


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers a request."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_hanging_cluster_costs_the_shell_about_the_timeout(
        silent_port: int, user_env: dict[str, str]) -> None:
    started = time.monotonic()
    assert ask(user_env, f"kcli -b 127.0.0.1:{silent_port} consume ") == []
    took = time.monotonic() - started
    assert completion.TIMEOUT <= took < completion.TIMEOUT + 4, took


# --------------------------------------------------------------------- every TOPIC and GROUP


def _line_reaching(node: Node, param: object) -> str | None:
    """A command line whose next word is a value of ``param``."""
    words = list(node.path)
    if is_argument(param):  # type: ignore[arg-type]
        for other in node.params():
            if other is param:
                return " ".join(words) + " "
            if is_argument(other):
                if other.nargs == -1:
                    return None
                words.append("x")
        return None
    return " ".join([*words, param.opts[0]]) + " "  # type: ignore[attr-defined]


def test_every_topic_and_group_parameter_completes_from_the_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Walks the whole app: whatever command lands, a parameter whose metavar names
    TOPIC (or GROUP) completes topic (or group) names."""
    monkeypatch.setitem(completion._LOOKUPS, "topic", lambda _o, _t: ["fake-topic"])
    monkeypatch.setitem(completion._LOOKUPS, "group", lambda _o, _t: ["fake-group"])
    root = root_node()
    seen = {"topic": 0, "group": 0}
    for leaf in root.leaves():
        for param in leaf.params():
            kind = completion._kind(leaf.ctx, param)
            if kind not in seen:
                continue
            line = _line_reaching(leaf, param)
            if line is None:
                continue
            monkeypatch.setenv(completion.LINE_VAR, line + "fake")
            comp = completion.BashComplete(root.command, {}, "kcli", completion.COMPLETE_VAR)
            assert comp.complete() == f"plain,fake-{kind}", line
            seen[kind] += 1
    assert seen["topic"] >= 10, seen
    assert seen["group"] >= 4, seen


def test_split_line_undoes_quoting() -> None:
    assert completion.split_line("kcli consume ") == (["consume"], "")
    assert completion.split_line("kcli consume or") == (["consume"], "or")
    assert completion.split_line("kcli consume 'my to") == (["consume"], "my to")
    assert completion.split_line("kcli -b a:1 consume my\\ t") == (["-b", "a:1", "consume"],
                                                                   "my t")
    assert completion.split_line("") == ([], "")
