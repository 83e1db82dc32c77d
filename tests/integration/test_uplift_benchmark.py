"""The uplift benchmark's core (``benchmarks/uplift.py``) at a tiny size: a generated campaign,
its lake and gold, both models fitted and the targeting rules judged against the oracle."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mlflow import MlflowClient

from churn_transform.settings import PROJECT_ROOT
from tests.conftest import tracking_store


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "uplift_bench", PROJECT_ROOT / "benchmarks/uplift.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["uplift_bench"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_the_uplift_benchmark_judges_every_rule_beside_the_oracle_s_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _benchmark()
    report = bench.run(tmp_path, users=5000, seed=3, share=0.5, holdout=0.3)
    assert 0 < report.held_out_users < report.campaign_users
    rules = {row.rule for row in report.rows}
    assert rules == {
        "uplift (X-learner)", "uplift (T-learner)", "churn probability", "random", "oracle best"
    }  # fmt: skip
    for size in {row.size for row in report.rows}:
        at = {row.rule: row for row in report.rows if row.size == size}
        assert all(row.saves <= at["oracle best"].saves + 1e-9 for row in at.values())
        assert at["random"].saves == pytest.approx(size * report.mean_effect)
    assert report.scores["oracle best"]["qini"] == pytest.approx(1.0)
    printed = bench.table(report)
    assert "uplift (X-learner)" in printed and "best net NTD" in printed
    # a rerun with the same size and seed reuses the lake: the same held-out users and truth
    again = bench.run(tmp_path, users=5000, seed=3, share=0.5, holdout=0.3)
    assert (again.held_out_users, again.mean_effect) == (report.held_out_users, report.mean_effect)
    # --track: the same figures as an MLflow run
    uri = tracking_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("KKBOX_TRACKING_URI", uri)
    bench.track(report, {"users": 5000, "track": True})
    (run,) = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("kkbox-churn").experiment_id]
    )
    best = next(row for row in report.rows if row.rule == "oracle best")
    assert run.data.metrics[f"oracle_best_k{best.size}_saves"] == pytest.approx(best.saves)
    assert run.data.params == {"users": "5000"}
