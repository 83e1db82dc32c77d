"""The benchmark scripts run and print their tables (no timing is asserted: figures vary)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from churn_transform.settings import PROJECT_ROOT


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.integration
def test_generate_and_etl_benchmarks_print_their_figures(tmp_path: Path) -> None:
    out = _run(
        "benchmarks/generate.py",
        "--users",
        "600",
        "--log-start",
        "2016-11-01",
        "--out",
        str(tmp_path),
    )
    assert "rows/s" in out and "peak RSS" in out and "label mismatches              0" in out
    table = _run("benchmarks/etl.py", "--raw", str(tmp_path / "raw"))
    for row in ("ours (Dask)", "DuckDB", "pandas (naive)", "ours vs DuckDB"):
        assert row in table
    assert "failed" not in table
    dated = _run(
        "benchmarks/etl.py",
        "--raw",
        str(tmp_path / "raw"),
        "--logs-by-date",
        "--engines",
        "ours,duckdb",
    )
    assert "raw-logs-by-date" in dated and "ours vs DuckDB" in dated and "failed" not in dated
    increment = _run("benchmarks/increment.py", "--raw", str(tmp_path / "raw"))
    assert "| whole folder at once |" in increment and "| March on the base (2017-03-" in increment
    fidelity = _run("benchmarks/fidelity.py", "--raw", str(tmp_path / "raw"))
    assert "payment_method_41" in fidelity and "Sources:" in fidelity


@pytest.mark.integration
def test_the_suite_benchmark_prints_each_file_s_cpu_seconds_and_pytest_s_exit() -> None:
    out = _run(
        "benchmarks/suite.py", "--workers", "1", "--top", "1", "--",
        "tests/unit/test_dates.py", "tests/unit/test_labels.py", "-p", "no:cacheprovider",
    )  # fmt: skip
    assert "pytest exit 0" in out and "CPU seconds:" in out and "cores busy:" in out
    listed = [line for line in out.splitlines() if line.startswith("| tests/unit/test_")]
    assert len(listed) == 1  # --top 1
    assert "| the other 1 files |" in out
