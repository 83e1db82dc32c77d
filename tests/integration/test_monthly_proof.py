"""Issue 15's proof: seven months of the platform with the behaviour shift from June 2017 and a
service answering by id throughout (``benchmarks/monthly.py``, run as a user would).

The months before the shift keep the champion. The first cycle whose labels show the shift
(cohort June, labelled with July's increment) detects the decay and retrains. That candidate,
trained on the one month that shows the change, has not learned it yet: the next cycle sees its
realized quality and retrains again. From then on the served model's realized ROC AUC is within
0.02 of the oracle's, and the running service switched versions without a failed request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from churn_transform.settings import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.long]
SHIFT = "2017-06"
USERS = "100000"


def test_seven_months_with_a_shift_detect_retrain_recover_and_switch_without_a_failure(
    tmp_path: Path,
) -> None:
    out = tmp_path / "months.json"
    command = [
        sys.executable,
        "benchmarks/monthly.py",
        "--users",
        USERS,
        "--months",
        "7",
        "--shift-start",
        SHIFT,
        "--workdir",
        str(tmp_path / "work"),
        "--json",
        str(out),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=2400)
    assert out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(out.read_text())
    rows = {row["labelled"]: row for row in found["rows"]}
    assert list(rows) == [f"2017-{m:02d}" for m in range(3, 10)]
    assert "| month | labels of | drift share |" in result.stdout  # the table is printed

    # before the shift: the champion is kept
    for cohort in ("2017-03", "2017-04", "2017-05"):
        assert rows[cohort]["action"] == "kept", rows[cohort]["decision"]
        assert rows[cohort]["champion_after"] == "1"
    # the first labels that show the shift: decay detected, retrained, promoted
    shifted = rows[SHIFT]
    assert shifted["decision"].startswith("retrain: realized ROC AUC"), shifted["decision"]
    assert shifted["action"] == "promoted" and shifted["champion_after"] == "2"
    # every target held: detection, recovery within 0.02 of the oracle, no failed request
    assert found["missed"] == [], result.stdout[-3000:]
    last = found["rows"][-1]
    assert int(last["served_version"]) > 1
    assert last["oracle_auc"] - last["realized_auc"] <= 0.02
    assert "within 0.02 of the oracle's ROC AUC from the labels of: 2017-" in result.stdout

    # the service answered throughout, each version after the one before it, and never failed
    answers = found["answers"]
    assert len(answers) > 1000 and {status for status, _ in answers} == {200}
    versions = [int(version) for _, version in answers]
    assert versions == sorted(versions) and {1, 2} <= set(versions)
