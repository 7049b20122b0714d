"""The benchmark scripts still run end to end (on tiny inputs; no timing is asserted).

They are how the issues' performance targets are checked, so a change that
breaks one would otherwise go unnoticed until the next time figures are needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.mariadb
def test_ingest_benchmark_prints_rates_ratios_and_the_cpu_bound() -> None:
    script = str(BENCHMARKS / "ingest.py")
    output = subprocess.run(
        [sys.executable, script, "--events", "3000", "--naive-events", "200"],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    ).stdout
    assert "eve.json: 3000 events" in output
    ratios = re.findall(r"-> (SQLite|MariaDB): .* ratio (\d+\.\d+)", output)
    assert [engine for engine, _ in ratios] == ["SQLite", "MariaDB"]
    assert all(float(ratio) > 0 for _, ratio in ratios)
    bounds = re.findall(r"CPU: (.*) = (\d+\.\d+) s; .* a ratio of at most (\d+\.\d+)", output)
    assert len(bounds) == 2, output
    for parts, total, best in bounds:
        summed = sum(float(x) for x in re.findall(r"(\d+\.\d+) s", parts))
        assert abs(summed - float(total)) < 0.02  # the total adds up what it names
        assert float(best) > 0
    assert "MariaDB server" in bounds[1][0]  # the server runs on this machine here
    assert re.search(r"naive SELECT\+INSERT/line: +[\d,]+ events/s", output)


def _run(script: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    ).stdout


@pytest.mark.mariadb
def test_dashboard_benchmark_prints_every_panel_and_the_worst_p95() -> None:
    output = _run("dashboard.py", "--days", "1", "--per-day", "200", "--runs", "2")
    assert "exposed_clients" in output and "pihole_volume" in output
    assert re.search(r"worst p95: \d+\.\d ms \(target < 100 ms\)", output), output


@pytest.mark.mariadb
def test_year_benchmark_prints_sizes_the_days_prune_lookups_and_every_panel() -> None:
    output = _run("year.py", "--days", "3", "--per-day", "300", "--chunk-days", "2", "--runs", "1")
    assert "3 days x 300 DNS queries/day from 50 devices (900 events)" in output
    assert output.count("ingest: 900 events in") == 2
    for engine in ("SQLite", "MariaDB"):
        assert f"== {engine} (" in output
    assert len(re.findall(r"a day's prune: [\d,]+ rows in \d+\.\d s", output)) == 2
    assert len(re.findall(r"concurrent lookups: \d+, median \d+ ms, longest \d+ ms", output)) == 2
    assert output.count("exposed_clients") == 2
    assert len(re.findall(r"worst p95: 7 days [\d.]+ ms, 30 days [\d.]+ ms, 365 days", output)) == 2


def test_enrich_benchmark_prints_its_rate_and_the_ratio() -> None:
    output = _run("enrich.py", "--events", "500")
    assert "500 events, warm cache" in output
    assert re.search(r"vtguardian enrich: +[\d,]+ events/s +ratio \d+\.\d+", output), output
    assert re.search(r"vtguardian job: +[\d,]+ events/s +ratio \d+\.\d+", output), output
    assert re.search(r"job store: +[\d,]+ MB per million events", output), output


def test_quota_benchmark_prints_requests_per_ioc_and_the_alerted_iocs_place() -> None:
    output = _run("quota.py", "--events", "200")
    assert re.search(r"vtguardian: \d+ requests -> 1\.00 per IoC", output), output
    assert "alerted IoC was request #1" in output
    assert re.search(
        r"with fresh analyses and relationships: \d+ requests -> \d\.\d\d per IoC", output
    )
    assert "EXCEEDED" not in output and "(which enforces the same limits): 0" in output
    assert re.search(r"re-analyses today: [1-9]\d* of \d+ -> ok", output), output
    assert "the alerted IoC was request #1 after it was queued" in output


def test_protection_benchmark_prints_each_stage_the_cpu_and_the_quota_bound_case() -> None:
    output = _run(
        "protection.py",
        *("--trials", "2", "--idle-seconds", "2", "--load-seconds", "2"),
        *("--backlog", "5", "--minute-seconds", "3"),
    )
    for stage in ("stored", "looked up", "verdict", "block written", "alert sent"):
        # Each stage of both cases: every trial got there (the quota case has one).
        counts = re.findall(rf"-> {stage} +\d+\.\d\ds +\d+\.\d\ds +(\d+)", output)
        assert counts == ["2", "1"], (stage, output)
    assert re.search(r"line -> block: p50 \d+\.\d\d s, p95 \d+\.\d\d s", output), output
    assert re.search(r"line -> webhook alert: p50 \d+\.\d\d s", output), output
    assert "never got there" not in output
    for what in ("idle, notifications", "10 queries/s", "idle, polling"):
        assert re.search(rf"{what} +\d+\.\d\d%", output), (what, output)
    assert re.search(r"the alerted IoC was request #\d+", output), output


def test_run_all_runs_the_scripts_and_writes_their_results(tmp_path) -> None:
    """Each script is run by its own test above; this one checks that run_all runs what
    it is given and writes its results (the cheapest script, enrich, stands for all)."""
    out = tmp_path / "RESULTS.md"
    skipped = ("quota", "ingest", "dashboard", "protection", "year")
    output = _run(
        "run_all.py",
        "--quick",
        *(arg for name in skipped for arg in ("--skip", name)),
        *("--out", str(out)),
    )
    assert "FAILED" not in output
    written = out.read_text()
    assert "## enrich:" in written and "Machine: " in written
    assert not any(f"## {name}:" in written for name in skipped)
