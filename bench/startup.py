"""How long `kcli --help` takes to start, print and exit (the target is under 0.3 s).

    python bench/startup.py [--runs 20] [--kcli PATH]

Times ``python -m kcli --help`` from this checkout, the installed ``kcli`` console
script if one is on PATH (or --kcli), and ``python -c pass`` as the floor no Python
command can beat. Prints best, median and worst wall-clock time of each, and the
slowest imports of one ``-X importtime`` run. Not a test: nothing here asserts on time
(tests/cli/test_startup.py checks, without timing, that --help imports nothing heavy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.3


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def timed(argv: list[str], runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` runs (after one warm-up run)."""
    env = _env()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def slowest_imports(count: int = 10) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest imports, two levels deep."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kcli", "--help"],
                          env=_env(), capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        if depth <= 1:
            rows.append((int(cumulative), "  " * depth + name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kcli", help="an installed kcli to time as well")
    args = parser.parse_args()

    cases = [("python -c pass", [sys.executable, "-c", "pass"]),
             ("python -m kcli --help", [sys.executable, "-m", "kcli", "--help"])]
    installed = args.kcli or shutil.which("kcli")
    if installed:
        cases.append((f"{installed} --help", [installed, "--help"]))
    print(f"{'command':<48} {'best':>7} {'median':>7} {'worst':>7}")
    for label, argv in cases:
        times = timed(argv, args.runs)
        flag = "" if "pass" in label or statistics.median(times) < TARGET else "  (over target)"
        print(f"{label[-48:]:<48} {min(times):7.3f} {statistics.median(times):7.3f} "
              f"{max(times):7.3f}{flag}")
    print(f"\ntarget: median under {TARGET} s\n\nslowest imports (cumulative ms):")
    for micros, name in slowest_imports():
        print(f"  {micros / 1000:7.1f}  {name}")


if __name__ == "__main__":
    main()
