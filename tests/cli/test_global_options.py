"""Global options: accepted before the subcommand and on every command; one error line."""

from __future__ import annotations

import orjson

from tests.cli.conftest import Kcli


def test_options_before_and_after_the_subcommand(run_kcli: Kcli, bootstrap: str,
                                                 topic_name: str) -> None:
    run_kcli("-b", bootstrap, "-q", "topic", "create", topic_name).ok()
    run_kcli("topic", "describe", topic_name, "-b", bootstrap, "-o", "json").ok()
    # the option on the command wins over the one before it
    done = run_kcli("-b", "127.0.0.1:1", "-o", "table", "topic", "describe", topic_name,
                    "-b", bootstrap, "-o", "jsonl").ok()
    assert orjson.loads(done.out)["name"] == topic_name
    run_kcli("topic", "describe", topic_name, env={"KCLI_BOOTSTRAP": bootstrap}).ok()
    run_kcli("topic", "describe", topic_name, "-X", f"bootstrap.servers={bootstrap}").ok()
    run_kcli("-X", "nonsense", "topic", "list").fails(2, r"-X expects key=value")
    run_kcli("topic", "list", "-o", "yaml").fails(
        2, r"unknown output format 'yaml' \(choose from table, json, jsonl\)")
    run_kcli("topic", "list", "--timeout", "-1").fails(2, r"--timeout must be a positive number")


def test_quiet_and_debug(kcli: Kcli, topic_name: str) -> None:
    assert kcli("-q", "topic", "create", topic_name).ok().err == ""
    assert kcli("produce", topic_name, "-q", input=b"x\n").ok().err == ""
    loud = kcli("topic", "describe", "no-such-topic-d", "--debug")
    assert loud.code == 4
    assert "Traceback" in loud.err
    assert loud.err.strip().splitlines()[-1].startswith("kcli: error: topic 'no-such-topic-d'")


def test_usage_errors_are_one_line(run_kcli: Kcli) -> None:
    run_kcli("topic", "create").fails(2, r"Missing argument 'TOPIC'.*kcli topic create --help")
    run_kcli("topic", "lst").fails(2, r"No such command 'lst'")
    run_kcli("consume", "t", "--bogus").fails(2, r"No such option: --bogus")
    run_kcli("consume", "t", "-n", "many").fails(2, r"-n")
