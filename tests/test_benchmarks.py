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
