"""`kcli user` and `kcli acl` against a broker with SASL and an authorizer: users made
here log in with confluent-kafka, ACLs made here decide what they may do, and every
refusal is one line with the right exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from tests.cli.conftest import Kcli
from tests.support.broker import BrokerProcess, free_port

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """PLAINTEXT (anonymous is a super user: kcli manages from there) and SCRAM on
    SASL_PLAINTEXT, one port up."""
    root: Path = tmp_path_factory.mktemp("security-cli")
    base = free_port(2)
    broker = BrokerProcess(root / "broker", port=base, settings={
        "listeners": f"PLAINTEXT://127.0.0.1:{base},SASL_PLAINTEXT://127.0.0.1:{base + 1}",
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
    }).start()
    yield broker
    assert broker.stop() == 0, broker.log()


@pytest.fixture
def admin_kcli(run_kcli: Kcli, secured: BrokerProcess) -> Kcli:
    def run(*args: str, **kwargs: Any) -> Any:
        return run_kcli("-b", secured.bootstrap, *args, **kwargs)

    return run


def login(secured: BrokerProcess, user: str, password: str,
          mechanism: str = "SCRAM-SHA-512") -> dict[str, str]:
    return {"bootstrap.servers": f"127.0.0.1:{secured.port + 1}",
            "security.protocol": "sasl_plaintext", "sasl.mechanisms": mechanism,
            "sasl.username": user, "sasl.password": password}


def test_users(admin_kcli: Kcli, secured: BrokerProcess, topic_name: str) -> None:
    user = f"u-{topic_name[-8:]}"
    admin_kcli("user", "create", user, "--password-stdin", input=b"first-Pw\n").ok()
    admin_kcli("user", "create", user, "-m", "SCRAM-SHA-256", "--iterations", "8192",
               env={"KCLI_PASSWORD": "second-Pw"}).ok()
    listed = json.loads(admin_kcli("user", "list", "-o", "json").ok().text)
    mine = next(u for u in listed if u["user"] == user)
    assert mine["mechanisms"] == [{"mechanism": "SCRAM-SHA-256", "iterations": 8192},
                                  {"mechanism": "SCRAM-SHA-512", "iterations": 4096}]
    AdminClient(login(secured, user, "first-Pw")).list_topics(timeout=10)
    AdminClient(login(secured, user, "second-Pw", "SCRAM-SHA-256")).list_topics(timeout=10)
    table = admin_kcli("user", "list").ok().text
    assert user in table
    assert "first-Pw" not in table
    admin_kcli("user", "delete", user, "-m", "SCRAM-SHA-256").ok()
    admin_kcli("user", "delete", user).ok()
    assert user not in admin_kcli("user", "list").ok().text
    admin_kcli("user", "delete", user).fails(4, "does not exist|no SCRAM credentials")


def test_user_password_never_from_argv(admin_kcli: Kcli) -> None:
    admin_kcli("user", "create", "nopw").fails(2, r"no password: give --password-stdin")
    admin_kcli("user", "create", "x", "--password-stdin", input=b"\n").fails(
        2, "the password is empty")
    admin_kcli("user", "create", "x", "--iterations", "100", input=b"pw\n").fails(
        2, "iterations")
    admin_kcli("user", "create", "x", "-m", "MD5", "--password-stdin", input=b"pw\n").fails(
        2, "not one of SCRAM-SHA-256, SCRAM-SHA-512")


def test_acls(admin_kcli: Kcli, run_kcli: Kcli, secured: BrokerProcess,
              topic_name: str) -> None:
    user = f"a-{topic_name[-8:]}"
    admin_kcli("user", "create", user, "--password-stdin", input=b"acl-Pw\n").ok()
    admin_kcli("topic", "create", topic_name).ok()
    admin_kcli("acl", "create", "--allow-principal", f"User:{user}", "--operation", "read",
               "--operation", "describe", "--topic", topic_name).ok()
    admin_kcli("acl", "create", "--deny-principal", f"User:{user}", "--operation", "write",
               "--topic", topic_name[:6], "--resource-pattern-type", "prefixed").ok()
    rows = json.loads(admin_kcli("acl", "list", "--principal", f"User:{user}",
                                 "-o", "json").ok().text)
    assert sorted((r["permission"], r["operation"], r["pattern"]) for r in rows) == [
        ("allow", "describe", "literal"), ("allow", "read", "literal"),
        ("deny", "write", "prefixed")]
    applying = json.loads(admin_kcli("acl", "list", "--topic", topic_name,
                                     "--resource-pattern-type", "match", "-o", "json").ok().text)
    assert len(applying) == 3  # the prefixed DENY applies to the topic too

    # as the user: reading metadata works, deleting the topic is refused, in one line
    # naming what was refused
    run_kcli("profile", "add", "as-user", "-b", f"127.0.0.1:{secured.port + 1}",
             "--sasl-mechanism", "SCRAM-SHA-512", "--username", user, "--password-stdin",
             input=b"acl-Pw\n").ok()
    run_kcli("profile", "use", "--none").ok()  # only with -p: admin_kcli stays anonymous
    as_user = ["-p", "as-user"]
    assert topic_name in run_kcli(*as_user, "topic", "list").ok().text
    run_kcli(*as_user, "topic", "delete", topic_name, "--yes").fails(
        1, f"delete topic {topic_name}: Broker: Topic authorization failed")

    admin_kcli("acl", "delete", "--principal", f"User:{user}").fails(
        2, "3 ACLs match; refusing to delete them without confirmation")
    gone = json.loads(admin_kcli("acl", "delete", "--principal", f"User:{user}",
                                 "--operation", "write", "-o", "json").ok().text)
    assert [r["operation"] for r in gone["deleted"]] == ["write"]
    admin_kcli("acl", "delete", "--principal", f"User:{user}", "--yes").ok()
    assert json.loads(admin_kcli("acl", "list", "--principal", f"User:{user}",
                                 "-o", "json").ok().text) == []


@pytest.mark.parametrize(("args", "message"), [
    (["acl", "create", "--operation", "read", "--topic", "t"], "--allow-principal"),
    (["acl", "create", "--allow-principal", "alice", "--topic", "t"], "TYPE:NAME"),
    (["acl", "create", "--allow-principal", "User:a"], "which resource"),
    (["acl", "create", "--allow-principal", "User:a", "--topic", "t", "--group", "g"],
     "give one of"),
    (["acl", "create", "--allow-principal", "User:a", "--topic", "t", "--operation", "fly"],
     "not one of"),
    (["acl", "list", "--resource-pattern-type", "glob"], "not one of"),
])
def test_acl_bad_input(admin_kcli: Kcli, args: list[str], message: str) -> None:
    admin_kcli(*args).fails(2, message)


def test_a_profile_for_a_sasl_listener(admin_kcli: Kcli, run_kcli: Kcli, secured: BrokerProcess,
                                       topic_name: str, tmp_path: Path) -> None:
    user = f"p-{topic_name[-8:]}"
    admin_kcli("user", "create", user, "--password-stdin", input=b"profile-Pw\n").ok()
    admin_kcli("topic", "create", topic_name).ok()
    admin_kcli("acl", "create", "--allow-principal", f"User:{user}", "--operation",
               "describe", "--topic", topic_name).ok()
    run_kcli("profile", "add", "sec", "-b", f"127.0.0.1:{secured.port + 1}",
             "--sasl-mechanism", "SCRAM-SHA-512", "--username", user,
             "--password-stdin", input=b"profile-Pw\n").ok()
    listed = run_kcli("profile", "list", "-o", "json").ok().text
    assert "profile-Pw" not in listed
    assert '"security.protocol": "SASL_PLAINTEXT"' in listed.replace("\n", " ") or \
        "SASL_PLAINTEXT" in listed
    assert topic_name in run_kcli("-p", "sec", "topic", "list").ok().text
    config = (tmp_path / "config" / "kcli" / "config.toml")
    assert config.stat().st_mode & 0o077 == 0  # the secret is only the owner's


def test_profile_security_options_and_the_argv_warning(run_kcli: Kcli, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until a client connects\n")
    run_kcli("profile", "add", "tls", "-b", "k:9093", "--ca-cert", str(ca)).ok()
    shown = run_kcli("profile", "list", "-o", "json").ok().text
    assert "SSL" in shown
    assert str(ca) in shown
    run_kcli("profile", "add", "x", "-b", "k:1", "--sasl-mechanism", "PLAIN").fails(
        2, "needs --username")
    run_kcli("profile", "add", "x", "-b", "k:1", "--ca-cert", "/nonexistent").fails(
        2, "is not a file")
    run_kcli("profile", "add", "x", "-b", "k:1", "--client-cert", str(ca)).fails(
        2, "go together")
    warned = run_kcli("profile", "add", "y", "-b", "k:1", "-X", "sasl.password=visible").ok()
    assert "warning: -X sasl.password on the command line is visible" in warned.err
    assert "visible\n" not in warned.err  # the value itself is never echoed
