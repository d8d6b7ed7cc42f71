"""`kcli broker run` with security settings it cannot use: one line saying what, the
usage exit code for a malformed setting, the failure code for a missing file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.broker import free_port, kcli_command, kcli_env

pytestmark = pytest.mark.system


@pytest.mark.parametrize(("settings", "code", "message"), [
    (["listeners=FOO://127.0.0.1:0"], 2, "listener FOO has no security protocol"),
    (["listeners=SSL://127.0.0.1:0"], 1, "needs ssl.keystore.location"),
    (["listeners=SSL://127.0.0.1:0", "ssl.keystore.location=/nonexistent.pem"], 1,
     "ssl.keystore.location /nonexistent.pem: No such file or directory"),
    (["listeners=SASL_PLAINTEXT://127.0.0.1:0"], 1, "offers PLAIN but has no JAAS config"),
    (["listener.name.sasl_plaintext.plain.sasl.jaas.config=Module required user_a=\"pw"], 2,
     "sasl.jaas.config"),
    (["sasl.enabled.mechanisms=GSSAPI"], 2, "'GSSAPI' is not one of"),
])
def test_refused_at_start(tmp_path: Path, settings: list[str], code: int,
                          message: str) -> None:
    args = ["broker", "run", "--data-dir", str(tmp_path / "d"),
            "--listen", f"127.0.0.1:{free_port()}"]
    for setting in settings:
        args += ["-c", setting]
    done = subprocess.run(kcli_command(*args), env=kcli_env(), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("kcli: error:")]
    assert len(lines) == 1, done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert "pw" not in lines[0]
