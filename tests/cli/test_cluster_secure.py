"""`kcli cluster start --secure`: a SASL_SSL/SCRAM-SHA-512 cluster with ACLs whose
generated profile makes every command work without flags, that kcat reaches with the
CA it prints, that grows and restarts secured, and that never shows its password."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pexpect

from tests.cli.conftest import Kcli, Run
from tests.support.broker import free_port, kcli_command


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every value of a topic, from a plaintext cluster."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        values, ended = [], set()
        while len(ended) < len(partitions):
            for message in consumer.consume(100, 1.0):
                if message.error() is None:
                    values.append(message.value())
                else:
                    ended.add(message.partition())
        return values
    finally:
        consumer.close()


def dashboard_shows(env: dict[str, str], topic: str) -> str:
    """The real `kcli tui` in a pty with no flags: it must log in through the generated
    profile, list the topic on its topics screen, and quit cleanly with q."""
    command = kcli_command("tui", "--interval", "0.5")
    env = {**env, "TERM": "xterm-256color"}
    child = pexpect.spawn(command[0], command[1:], env=env, timeout=30, dimensions=(30, 120),
                          encoding="utf-8", codec_errors="replace")
    try:
        child.expect_exact("Brokers 1")
        child.send("2")  # the topics screen
        child.expect_exact(topic[:40])
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    return child.before or ""


def test_secure_cluster(run_kcli: Kcli, cli_env: dict[str, str], cluster_dir: Path,
                        topic_name: str, tmp_path: Path, bootstrap: str) -> None:
    outputs: list[str] = []  # every kcli output, command line and log: no password

    def k(*args: str, **kwargs: Any) -> Run:
        done = run_kcli(*args, **kwargs)
        outputs.append(done.out.decode(errors="replace") + done.err)
        return done

    port = free_port(3)
    started = k("cluster", "start", "--secure", "--data-dir", str(cluster_dir),
                       "--port", str(port), "-o", "json").ok()
    assert json.loads(started.text)["schema_registry"]
    facts = json.loads(started.text)["security"]
    password = (cluster_dir / "security" / "admin.password").read_text().strip()
    assert facts == {"protocol": "SASL_SSL", "mechanism": "SCRAM-SHA-512", "user": "admin",
                     "ca": str(cluster_dir / "security" / "ca.pem"),
                     "profile": f"local-{cluster_dir.name}", "default": True}
    assert password not in started.text + started.err
    for path in (cluster_dir / "security").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path

    # every command through the generated profile, with no flags
    k("topic", "create", topic_name, "-P", "2").ok()
    # and with no profile at all: the local cluster itself knows its login
    k("profile", "use", "--none").ok()
    assert topic_name in k("topic", "list").ok().text
    k("profile", "use", f"local-{cluster_dir.name}").ok()
    k("produce", topic_name, input=b"one\ntwo\n").ok()
    consumed = k("consume", topic_name, "-n", "2", "-g", "secure-group").ok()
    assert sorted(consumed.text.split()) == ["one", "two"]
    assert "secure-group" in k("group", "list").ok().text
    # kcli's own requests (kcli txn) log in over TLS with SCRAM too
    assert json.loads(k("txn", "list", "-o", "json").ok().text) == []
    k("user", "create", "alice", "--password-stdin", input=b"alice-Pw\n").ok()
    k("acl", "create", "--allow-principal", "User:alice", "--operation", "read",
             "--topic", topic_name).ok()
    assert "alice" in k("acl", "list").ok().text
    # the Schema Registry logs in as admin too: Avro through it
    schema = tmp_path / "n.avsc"
    schema.write_text('{"type": "record", "name": "N", '
                      '"fields": [{"name": "n", "type": "int"}]}')
    k("produce", topic_name, "-f", "avro", "--schema", str(schema),
             input=b'{"n": 7}\n').ok()
    assert f"{topic_name}-value" in k("schema", "list").ok().text
    framed = k("consume", topic_name, "-f", "avro", "--on-error", "raw").ok().text
    assert '{"n":7}' in framed

    # migrate from the secured cluster to a plaintext one (the session broker)
    k("migrate", topic_name, "--to", bootstrap).ok()
    copied = read_all(bootstrap, topic_name)
    assert {b"one", b"two"} <= set(copied)
    assert len(copied) == 3  # and the Avro record

    # backup from it and restore into it under another name, through the profile
    archive = tmp_path / "archive"
    k("backup", topic_name, "--to", str(archive)).ok()
    k("restore", str(archive), "-t", f"{topic_name}={topic_name}-restored").ok()
    restored = k("consume", f"{topic_name}-restored", "-n", "3", "--on-error",
                        "raw").ok()
    assert {"one", "two"} <= set(restored.text.split())

    # another client, with the CA and the listener it printed: nothing but SASL_SSL
    kcat = subprocess.run(
        ["kcat", "-b", f"127.0.0.1:{port}", "-X", "security.protocol=sasl_ssl",
         "-X", f"ssl.ca.location={facts['ca']}", "-X", "sasl.mechanisms=SCRAM-SHA-512",
         "-X", "sasl.username=admin", "-X", f"sasl.password={password}", "-L", "-m", "10"],
        capture_output=True, text=True, timeout=30, check=False)
    assert kcat.returncode == 0, kcat.stderr
    assert topic_name in kcat.stdout
    # the dashboard, through the profile
    seen = dashboard_shows(cli_env, topic_name)
    assert "Traceback" not in seen
    outputs.append(seen)
    plaintext = k("-X", "security.protocol=plaintext", "topic", "list",
                         env={"KCLI_TIMEOUT": "3"})
    assert plaintext.code == 3, plaintext.explain()  # a plaintext client is not served

    # no password on any kcli output, any broker's command line or in any log
    for pid in (b["pid"] for b in json.loads(
            (cluster_dir / "cluster.json").read_text())["brokers"]):
        outputs.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))

    # grown to three brokers, still secured: they replicate over SASL_SSL
    k("cluster", "stop", "--data-dir", str(cluster_dir)).ok()
    k("cluster", "start", "--data-dir", str(cluster_dir), "--brokers", "3").ok()
    k("topic", "create", f"{topic_name}-r3", "-P", "1", "-r", "3").ok()
    described = json.loads(k("topic", "describe", f"{topic_name}-r3",
                                    "-o", "json").ok().text)
    partition = described["partitions"][0]
    assert sorted(partition["replicas"]) == [1, 2, 3]
    assert sorted(partition["isr"]) == [1, 2, 3]
    for log in (cluster_dir / "logs").glob("broker-*.log"):
        text = log.read_text()
        assert password not in text
        assert "Traceback" not in text
    config = tmp_path / "config" / "kcli" / "config.toml"
    assert config.stat().st_mode & 0o077 == 0
    outputs += [log.read_text() for log in (cluster_dir / "logs").glob("*.log")]
    leaked = [text[:200] for text in outputs if password in text]
    assert not leaked
    assert all("alice-Pw" not in text for text in outputs)
    purged = k("cluster", "purge", "--yes", "--data-dir", str(cluster_dir)).ok()
    assert f"removed profile local-{cluster_dir.name}" in purged.err
    assert f"local-{cluster_dir.name}" not in k("profile", "list").ok().text


def test_secure_cannot_be_added_to_a_plaintext_cluster(run_kcli: Kcli,
                                                       cluster_dir: Path) -> None:
    port = free_port()
    run_kcli("cluster", "start", "--data-dir", str(cluster_dir), "--port", str(port),
             "--no-registry").ok()
    run_kcli("cluster", "stop", "--data-dir", str(cluster_dir)).ok()
    run_kcli("cluster", "start", "--secure", "--data-dir", str(cluster_dir)).fails(
        2, "was created without --secure; purge it first")
