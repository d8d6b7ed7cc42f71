"""`kcli --help` stays fast: the app imports no Kafka client, renderer or codec."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.broker import kcli_command, kcli_env

pytestmark = pytest.mark.system  # each test starts a fresh interpreter

HEAVY = ("confluent_kafka", "rich", "fastavro", "orjson", "click")


def test_importing_the_app_stays_light() -> None:
    code = ("import sys, kcli.cli.app; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=kcli_env(), check=True)
    assert done.stdout.strip() == ""


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys, runpy; sys.argv = ['kcli', '--help']\n"
            "try:\n    runpy.run_module('kcli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"sys.stderr.write(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=kcli_env(), check=True)
    assert done.stderr.strip() == ""
    assert "Usage: kcli" in done.stdout


def test_version() -> None:
    done = subprocess.run(kcli_command("--version"), capture_output=True, text=True,
                          env=kcli_env(), check=True)
    assert done.stdout.startswith("kcli ")


def test_consume_and_produce_need_no_protocol_codec() -> None:
    """kio (with the hypothesis hooks of its types, when hypothesis is installed) costs
    about 0.2 s to import; only kcli's own wire requests (log dirs, transactions) use it,
    and the record paths must not pay for it: `consume` ran 1.34 s against 0.88 s for
    300,000 records when it did (bench/cli_vs_kcat.py, best of 3 each)."""
    code = ("import sys, kcli.cli.consume, kcli.cli.produce, kcli.client.consumer, "
            "kcli.client.producer; print('kio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=kcli_env(), check=True)
    assert done.stdout.strip() == "False"
