"""Real shells load the committed completion scripts and complete kcli command lines.

Each shell runs in a pty with a private home, `kcli` (this checkout) on PATH and the
session broker in KCLI_BOOTSTRAP. After <TAB>, the test moves to the start of the line,
puts ``printf '<%s>'`` in front and presses Enter: the shell prints the words the line
holds, which is exactly what completion left there. bash, zsh and fish are required
(scripts/test installs them), as kcat is: a missing shell fails, never skips.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support.broker import REPO_ROOT, BrokerProcess

COMPLETIONS = REPO_ROOT / "completions"
PROMPT = "KP> "
_SET_PROMPT = "'KP''> '"  # the echo of the command setting it does not match PROMPT
_NOISE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>]"
                    r"|[\x07\x08\r]")


class Shell:
    """One interactive shell in a pty."""

    def __init__(self, name: str, env: dict[str, str], home: Path) -> None:
        path = shutil.which(name)
        if path is None:
            pytest.fail(f"{name} is not installed: scripts/test installs it "
                        f"(apt-get install bash zsh fish)")
        self.name = name
        if name == "bash":
            (home / ".inputrc").write_text("set show-all-if-ambiguous on\nset bell-style none\n")
            env = dict(env, INPUTRC=str(home / ".inputrc"))
            argv = ["--norc", "--noprofile"]
            setup = f"PS1={_SET_PROMPT}; source {COMPLETIONS / 'kcli.bash'}"
        elif name == "zsh":
            functions = home / "zfunc"
            functions.mkdir()
            shutil.copy(COMPLETIONS / "kcli.zsh", functions / "_kcli")  # as the README says
            argv = ["-f"]
            setup = (f"PS1={_SET_PROMPT}; unsetopt beep prompt_sp prompt_cr list_ambiguous; "
                     f"fpath=({functions} $fpath); autoload -Uz compinit; compinit -u -D")
        else:
            completions = home / ".config" / "fish" / "completions"
            completions.mkdir(parents=True)
            shutil.copy(COMPLETIONS / "kcli.fish", completions / "kcli.fish")
            argv = ["--no-config"]
            setup = (f"function fish_prompt; printf %s {_SET_PROMPT}; end; "
                     f"source {completions / 'kcli.fish'}")
        self.child = pexpect.spawn(path, argv, env=dict(env, TERM="xterm"), cwd=str(home),
                                   encoding="utf-8", timeout=30, dimensions=(40, 200))
        self.child.sendline(setup)
        self.child.expect_exact(PROMPT)

    def complete(self, text: str) -> list[str]:
        """The words of the line after typing ``text`` and <TAB>."""
        self.child.send(text + "\t")
        self.child.send("\x01printf '<%s>' \r")  # Ctrl-A: to the start of the line
        self.child.expect(r"<kcli>.*?" + re.escape(PROMPT))
        printed = _NOISE.sub("", self.child.after)
        return re.findall(r"<([^<>]*)>", printed)

    def listing(self, text: str, *expected: str) -> None:
        """Type ``text`` and <TAB>, wait until every ``expected`` word is on the screen,
        then abandon the line."""
        self.child.send(text + "\t")
        for word in expected:
            self.child.expect(re.escape(word))
        self.child.send("\x03")  # Ctrl-C
        self.child.expect_exact(PROMPT)

    def close(self) -> None:
        """End the shell."""
        self.child.close(force=True)


@pytest.fixture(scope="module")
def topics(broker: BrokerProcess) -> dict[str, str]:
    """Two topics sharing a unique prefix on the session broker."""
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"sh-{uuid.uuid4().hex[:8]}"
    names = {"prefix": prefix, "orders": f"{prefix}-orders", "events": f"{prefix}-events"}
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(names["orders"], 1), NewTopic(names["events"], 1)])
    for future in futures.values():
        future.result(timeout=30)
    return names


@pytest.fixture(params=["bash", "zsh", "fish"])
def shell(request: pytest.FixtureRequest, user_env: dict[str, str], broker: BrokerProcess,
          tmp_path: Path) -> Iterator[Shell]:
    env = dict(user_env, KCLI_BOOTSTRAP=broker.bootstrap)
    running = Shell(request.param, env, Path(env["HOME"]))
    yield running
    running.close()


def test_subcommands_complete(shell: Shell) -> None:
    assert shell.complete("kcli to") == ["kcli", "topic"]
    assert shell.complete("kcli topic add-") == ["kcli", "topic", "add-partitions"]
    assert shell.complete("kcli consume --follo") == ["kcli", "consume", "--follow"]


def test_topic_names_complete_from_the_session_broker(shell: Shell,
                                                      topics: dict[str, str]) -> None:
    assert shell.complete(f"kcli consume {topics['prefix']}-o") == [
        "kcli", "consume", topics["orders"]]
    # twice: zsh autoloads the function on the first <TAB> only
    assert shell.complete(f"kcli topic describe {topics['prefix']}-e") == [
        "kcli", "topic", "describe", topics["events"]]
    # an ambiguous prefix lists both (fish shortens the common part to "…")
    shell.listing(f"kcli consume {topics['prefix']}", "-events", "-orders")


def test_option_values_complete(shell: Shell) -> None:
    assert shell.complete("kcli topic list -o tab") == ["kcli", "topic", "list", "-o",
                                                          "table"]
    assert shell.complete("kcli topic list --output=tab") == ["kcli", "topic", "list",
                                                              "--output=table"]
