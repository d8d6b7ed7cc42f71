"""`kcli profile ...`: profiles saved privately, secrets never printed, used by -p."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import orjson

from tests.cli.conftest import Kcli


def config_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "kcli" / "config.toml"


def test_add_list_use_remove(run_kcli: Kcli, cli_env: dict[str, str]) -> None:
    run_kcli("profile", "add", "prod", "-b", "kafka-1:9093,kafka-2:9093",
             "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanism=PLAIN",
             "-X", "sasl.username=me", "-X", "sasl.password=hunter2").ok()
    path = config_file(cli_env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["current"] == "prod"  # the first profile becomes the default
    assert data["profiles"]["prod"]["properties"]["sasl.password"] == "hunter2"

    run_kcli("-X", "client.id=other", "-b", "x:1", "profile", "add", "dev").ok()
    listed = run_kcli("profile", "list").ok()
    assert "hunter2" not in listed.text
    assert orjson.loads(listed.out) == [
        {"name": "dev", "current": False, "bootstrap": "x:1",
         "properties": {"client.id": "other"}},
        {"name": "prod", "current": True, "bootstrap": "kafka-1:9093,kafka-2:9093",
         "properties": {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
                        "sasl.username": "me", "sasl.password": "****"}},
    ]
    table = run_kcli("profile", "list", "-o", "table").ok().text
    assert "hunter2" not in table
    assert orjson.loads(run_kcli("profile", "use", "dev", "-o", "json").ok().out) == {
        "default": "dev"}
    assert run_kcli("profile", "use", "prod").ok().out == b""  # JSON only when asked
    assert "****" in table

    run_kcli("profile", "add", "dev", "-b", "y:1").fails(1, r"exists.*--force")
    run_kcli("profile", "add", "dev", "-b", "y:1", "--force").ok()
    run_kcli("profile", "add", "nobootstrap").fails(2, r"needs bootstrap servers")
    run_kcli("profile", "add", "bad name", "-b", "y:1").fails(2, r"profile names use")
    run_kcli("profile", "use", "dev").ok()
    assert tomllib.loads(path.read_text())["current"] == "dev"
    run_kcli("profile", "use", "nope").fails(4, r"no profile named 'nope'")
    # rpk's `topic create -p 3` (partitions) meets the global -p (profile): say which is which
    run_kcli("topic", "create", "t", "-p", "3").fails(
        4, r"no profile named '3' .*\(-p is --profile; partitions are -P/--partitions\)")
    run_kcli("profile", "remove", "dev").ok()
    assert "current" not in tomllib.loads(path.read_text())
    run_kcli("profile", "remove", "dev").fails(4, r"no profile named 'dev' \(profiles: prod\)")


def test_profiles_connect(run_kcli: Kcli, bootstrap: str, topic_name: str) -> None:
    run_kcli("profile", "add", "session", "-b", bootstrap, "-X", "client.id=kcli-test").ok()
    run_kcli("profile", "add", "broken", "-b", "127.0.0.1:1").ok()
    run_kcli("profile", "use", "broken").ok()
    run_kcli("-p", "session", "topic", "create", topic_name).ok()
    names = {t["name"] for t in orjson.loads(
        run_kcli("topic", "list", env={"KCLI_PROFILE": "session"}).ok().out)}
    assert topic_name in names
    # the flag wins over the default profile's bootstrap
    run_kcli("topic", "describe", topic_name, "-b", bootstrap).ok()
    run_kcli("topic", "list", "--timeout", "3").fails(3, r"cannot reach 127.0.0.1:1")
    run_kcli("-p", "missing", "topic", "list").fails(4, r"no profile named 'missing'")
