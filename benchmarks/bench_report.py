"""Benchmark ``heard report`` on the demo study with the fallback renderer.

Copies the project's notebooks, report and site files into
``benchmarks/_data/report-project/`` (git-ignored), writes the demo study there and
builds its first month (not timed; 2026-11 reads it). Then times, each in its own
process:

- ``fresh``: ``heard report --month 2026-11 --fresh``, every notebook executed;
- ``unchanged``: the same command without ``--fresh`` straight after, which
  reuses the executed notebooks, the PDF and the site and scans nothing again.

For each run it prints the wall seconds, the user + system CPU seconds of the
command and everything it waited for (``os.wait4``), the seconds each stage took
(from the stage lines the command writes) and the machine's one-minute load.

Usage::

    .venv/bin/python benchmarks/bench_report.py
    .venv/bin/python benchmarks/bench_report.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROJECT = HERE / "_data" / "report-project"
HEARD = Path(sys.executable).with_name("heard")
MONTH = "2026-11"
TARGETS = {"fresh": 60.0, "unchanged": 15.0}
# "[2026-11 2/7] 01_segment_export": the month, then the stage's number and name.
STAGE_LINE = re.compile(r"^\[\S+ (\d+)/(\d+)\] (\S+)")


def copy_project(target: Path) -> None:
    """Lay out a project at `target` with the repository's notebooks and report."""
    shutil.rmtree(target, ignore_errors=True)
    for name in ("notebooks", "reports"):
        shutil.copytree(
            REPO / name, target / name, ignore=shutil.ignore_patterns("_output")
        )
    for name in ("_quarto.yml", "index.qmd"):
        shutil.copyfile(REPO / name, target / name)


def run_timed(arguments: list[str], *, cwd: Path) -> dict:
    """Run one command; return wall and CPU seconds and seconds per stage."""
    started = time.perf_counter()
    process = subprocess.Popen(
        arguments, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    stages, current, since = {}, "start-up", started
    for line in process.stderr:
        found = STAGE_LINE.match(line)
        if found:
            now = time.perf_counter()
            stages[current] = now - since
            current, since = found.group(3), now
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.perf_counter()
    stages[current] = ended - since
    return {
        "seconds": ended - started,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "status": os.waitstatus_to_exitcode(status),
        "stages": stages,
        "load": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind")
    options = parser.parse_args()

    # Set up: the demo study and its first month, which 2026-11 compares with.
    copy_project(PROJECT)
    environment = os.environ | {"HEARD_KEY_FILE": str(PROJECT / "pseudonym.key")}
    os.environ.update(environment)
    command = [str(HEARD), "report", "--month", MONTH, "--renderer", "fallback"]
    setup = run_timed(command, cwd=PROJECT)
    if setup["status"] != 0:
        print("the first build failed; run the command by hand to see why")
        return 1

    # Time a fresh run, then an unchanged one, `repeat` times.
    results = []
    for _ in range(options.repeat):
        for kind, extra in (("fresh", ["--fresh"]), ("unchanged", [])):
            result = run_timed(command + extra, cwd=PROJECT) | {"kind": kind}
            results.append(result)
            stages = ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items())
            print(
                f"{kind:>9}: {result['seconds']:5.1f} s wall, "
                f"{result['cpu_seconds']:5.1f} s CPU (target {TARGETS[kind]:.0f} s "
                f"wall), load {result['load']:.1f}; stages: {stages}"
            )
    (HERE / "_data" / "bench_report.json").write_text(json.dumps(results, indent=1))
    return 0 if all(r["status"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
