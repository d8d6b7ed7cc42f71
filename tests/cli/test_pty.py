"""In a real terminal: the delete confirmation prompt and table output by default."""

from __future__ import annotations

import json
import re
import signal

import pexpect
import pytest
from confluent_kafka.admin import AdminClient

from tests.cli.conftest import Kcli
from tests.support.broker import kcli_command


def spawn(cli_env: dict[str, str], *args: str) -> pexpect.spawn:
    command = kcli_command(*args)
    return pexpect.spawn(command[0], command[1:], env=cli_env, timeout=30,
                         dimensions=(24, 100))


def test_delete_asks_first(kcli: Kcli, topic: str, bootstrap: str,
                           cli_env: dict[str, str]) -> None:
    child = spawn(cli_env, "-b", bootstrap, "topic", "delete", topic)
    child.expect_exact(f"Delete topic: {topic}? [y/N]")
    child.sendline("n")
    child.expect_exact("nothing deleted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics().topics

    child = spawn(cli_env, "-b", bootstrap, "topic", "delete", topic)
    child.expect_exact("[y/N]")
    child.sendline("y")
    child.expect_exact(f"deleted topic {topic}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_table_on_a_terminal(kcli: Kcli, topic: str, bootstrap: str,
                             cli_env: dict[str, str]) -> None:
    child = spawn(cli_env, "-b", bootstrap, "topic", "list")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = re.sub(r"\x1b\[[0-9;]*m", "", child.before.decode())  # colours on a terminal
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "PARTITIONS", "REPLICATION", "RECORDS", "SIZE"]
    assert any(line.split()[:4] == [topic, "3", "1", "0"] for line in lines)
    assert "\x1b[" in child.before.decode()  # and it is styled


def test_ctrl_c_stops_a_follow(kcli: Kcli, topic: str, bootstrap: str,
                               cli_env: dict[str, str]) -> None:
    """The normal way to stop a follow: exit 130 with the summary, and no error."""
    kcli("produce", topic, "-P", "0", input=b"hello\n").ok()
    child = spawn(cli_env, "-b", bootstrap, "consume", topic, "--follow")
    child.expect_exact("hello")
    child.sendintr()
    child.expect_exact(f"consumed 1 record from {topic}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert b"error" not in (child.before or b"")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_group_consumer_leaves_its_group(kcli: Kcli, topic: str, bootstrap: str,
                                                   cli_env: dict[str, str],
                                                   signum: int) -> None:
    """SIGTERM (a service manager) and SIGINT close the consumer: the group is empty
    at once, not after the session timeout."""
    group = f"leaving-{topic}"
    kcli("produce", topic, "-P", "0", input=b"hello\n").ok()
    child = spawn(cli_env, "-b", bootstrap, "consume", topic, "-g", group, "--follow")
    child.expect_exact("hello")
    child.kill(signum)
    child.expect_exact(f"consumed 1 record from {topic}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 128 + signum
    described = json.loads(kcli("group", "describe", group, "-o", "json").ok().out)
    assert described["state"] == "Empty", described
    assert described["members"] == []
