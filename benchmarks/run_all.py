"""Run every benchmark, one after the other, and write benchmarks/RESULTS.md.

Each script prints its own side-by-side figures; this collects them with the
machine they ran on, so the figures in the README can be traced to a run.
Benchmarks share the machine with nothing else while they run: start this on
an idle box (a test suite running beside it halves some figures).
Usage: python benchmarks/run_all.py [--skip dashboard] [--out benchmarks/RESULTS.md]
       [--quick]   (tiny inputs: checks every script runs, the figures mean nothing)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "quota": "Requests per IoC and time to verdict for an alerted IoC",
    "ingest": "Ingest speed against a bare orjson loop, peak RSS, naive per-line SQL",
    "enrich": "Enrichment speed of ECS events with a warm cache",
    "dashboard": "Panel query p50/p95 over 7 and 30 days of a busy household (MariaDB)",
    "protection": "Time from a first query to its block and alert, CPU of run, quota-bound",
    "year": "A year with retention: ingest, size, a day's prune beside lookups, panels over 365 d",
}
PROTECTION_QUICK = [
    *("--trials", "2", "--idle-seconds", "2", "--load-seconds", "2"),
    *("--backlog", "5", "--minute-seconds", "3"),
]
QUICK = {
    "quota": ["--events", "200"],
    "ingest": ["--events", "3000", "--naive-events", "200"],
    "enrich": ["--events", "500"],
    "dashboard": ["--days", "1", "--per-day", "200", "--runs", "2"],
    "protection": PROTECTION_QUICK,
    "year": ["--days", "3", "--per-day", "300", "--chunk-days", "2", "--runs", "1"],
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip", action="append", default=[], choices=list(SCRIPTS))
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, to check they run")
    args = parser.parse_args()
    sections, failed = [], []
    for name, what in SCRIPTS.items():
        if name in args.skip:
            continue
        print(f"== {name}: {what}", flush=True)
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, str(HERE / f"{name}.py"), *(QUICK[name] if args.quick else [])],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        output = completed.stdout.strip() or "(no output)"
        if completed.returncode != 0:
            failed.append(name)
            output += (
                f"\n\nFAILED with exit code {completed.returncode}:\n{completed.stderr[-2000:]}"
            )
        print(output, flush=True)
        sections.append(f"## {name}: {what}\n\n({seconds:.0f} s)\n\n```\n{output}\n```\n")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.out.write_text(
        "# Benchmark results\n\n"
        f"Written by `benchmarks/run_all.py` on {stamp}.\n\n"
        f"Machine: {machine()}.\n\n"
        "Every figure is measured side by side in one run of its script; the targets\n"
        "are in each script's docstring and in the README.\n\n" + "\n".join(sections)
    )
    print(f"written {args.out}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
