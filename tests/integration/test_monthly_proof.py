"""Issue 15's proof, at the size CI affords: three months of the platform with the behaviour shift
from May 2017 and a service answering by id throughout (``benchmarks/monthly.py``, run as a user
would, 20,000 users).

The months before the shift keep the champion. The first cycle whose labels show the shift
(cohort May, labelled with June's increment) detects the decay, retrains and promotes, and the
running service switches to the new version without a failed request. The return to within 0.02
of the oracle takes months more: ``make bench-months`` (100,000 users, seven months) shows it,
with its table in benchmarks/README.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from churn_transform.settings import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.long]
SHIFT = "2017-05"
USERS = "20000"  # 135 s beside another job; the decay 0.094 against a limit of 0.03


def test_months_with_a_shift_detect_retrain_promote_and_switch_without_a_failure(
    tmp_path: Path,
) -> None:
    out = tmp_path / "months.json"
    command = [
        sys.executable,
        "benchmarks/monthly.py",
        "--users",
        USERS,
        "--months",
        "3",
        "--shift-start",
        SHIFT,
        "--min-segment-users",
        "150",
        "--no-recovery",
        "--workdir",
        str(tmp_path / "work"),
        "--json",
        str(out),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800)
    assert out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    found = json.loads(out.read_text())
    rows = {row["labelled"]: row for row in found["rows"]}
    assert list(rows) == ["2017-03", "2017-04", "2017-05"]
    assert "| month | labels of | drift share |" in result.stdout  # the table is printed

    # before the shift: the champion is kept
    for cohort in ("2017-03", "2017-04"):
        assert rows[cohort]["action"] == "kept", rows[cohort]["decision"]
        assert rows[cohort]["champion_after"] == "1"
    # the first labels that show the shift: decay detected, retrained, promoted
    shifted = rows[SHIFT]
    assert shifted["decision"].startswith("retrain: realized ROC AUC"), shifted["decision"]
    assert shifted["action"] == "promoted" and shifted["champion_after"] == "2"
    assert found["missed"] == [], result.stdout[-3000:]
    assert result.returncode == 0

    # the ROC AUC estimated from the probabilities when each cohort was scored (CBPE), two
    # cycles before its labels: right while the model's probabilities hold (2017-03: -0.0002,
    # 2017-04: +0.016 at 20,000 users), blind to the shift of how churn follows from the
    # features (2017-05: realized 0.81 against 0.90 estimated), which is the method's assumption
    assert "| estimated at scoring | estimation error |" in result.stdout
    for cohort in ("2017-03", "2017-04"):
        row = rows[cohort]
        assert abs(row["realized_auc"] - row["estimated_auc"]) < 0.05, row
    assert shifted["realized_auc"] - shifted["estimated_auc"] < -0.05, shifted
    assert all(row["scored_estimated_auc"] is not None for row in rows.values())

    # the service answered throughout, each version after the one before it, and never failed
    answers = found["answers"]
    assert len(answers) > 500 and {status for status, _ in answers} == {200}
    versions = [int(version) for _, version in answers]
    assert versions == sorted(versions) and {1, 2} <= set(versions)
