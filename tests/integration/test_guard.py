"""The ratio guard catches a real slowdown of our conversion: code on the path of its child
processes makes silver parse every CSV block four times over, as a regression would, and the
guard must fail naming ``etl_convert`` while the memory ratio it measured beside stays clear."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn_transform.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

#: Imported by every Python process started with its folder on PYTHONPATH (``site``): the
#: guard and each of its child processes. Each call is written down, so the test knows the
#: slow code ran where the guard timed it.
SLOWER_SILVER = """
import os
from churn_transform.etl.silver import scatter

_parse_block = scatter.parse_block


def parse_block(block, name, first):
    with open(os.environ["SLOWER_SILVER_CALLS"], "a") as calls:
        calls.write(f"{os.getpid()}\\n")
    for _ in range(3):  # redundant work, then the real answer
        _parse_block(block, name, first)
    return _parse_block(block, name, first)


scatter.parse_block = parse_block
"""


def _line(printed: str, ratio: str) -> str:
    return next(line for line in printed.splitlines() if line.startswith(f"{ratio} "))


def test_a_slower_conversion_fails_the_guard_naming_the_etl_ratio(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(SLOWER_SILVER)
    calls = tmp_path / "calls"
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "benchmarks/guard.py", "--only", "etl"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": path, "SLOWER_SILVER_CALLS": str(calls)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    assert "guard: FAIL etl_convert" in result.stderr, result.stderr[-2000:]
    assert " FAIL " in _line(result.stdout, "etl_convert")
    assert " PASS " in _line(result.stdout, "etl_memory")  # the guard does not fail everything
    assert calls.read_text(), "the slower parse never ran: the guard timed something else"
