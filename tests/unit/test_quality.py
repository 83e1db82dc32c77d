"""Realized quality (``monitoring.quality``) on predictions whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from churn_transform.monitoring.quality import ALL, calibration_error, realized_quality


def _predictions(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    msno = [f"user{i:04d}" for i in range(n)]
    truth = rng.uniform(0.01, 0.6, n)
    labels = pd.Series((rng.uniform(size=n) < truth).astype(int), index=msno)
    noisy = np.clip(truth + rng.normal(0, 0.1, n), 0.001, 0.999)
    frame = pd.DataFrame(
        {
            "msno": msno,
            "churn_probability": noisy,
            "churn": noisy >= 0.3,
            "model_version": "3",
            "source": "batch",
        }
    )
    return frame, labels, pd.Series(truth, index=msno)


def test_overall_figures_are_sklearn_s_on_the_labelled_users() -> None:
    predictions, labels, oracle = _predictions()
    unlabelled = labels.iloc[::10].index
    quality = realized_quality(predictions, labels.drop(unlabelled), oracle=oracle)
    row = quality[quality["segment"] == ALL].iloc[0]
    kept = predictions[~predictions["msno"].isin(unlabelled)]
    y = labels.reindex(kept["msno"]).to_numpy()
    assert row["users"] == len(kept)
    assert row["roc_auc"] == pytest.approx(roc_auc_score(y, kept["churn_probability"]))
    assert row["log_loss"] == pytest.approx(log_loss(y, kept["churn_probability"]))
    decided = kept["churn"].to_numpy()
    assert row["decision_rate"] == pytest.approx(decided.mean())
    assert row["precision"] == pytest.approx(y[decided].mean())
    assert row["recall"] == pytest.approx(decided[y == 1].mean())
    assert row["oracle_roc_auc"] == pytest.approx(roc_auc_score(y, oracle.reindex(kept["msno"])))


def test_calibration_error_is_the_gap_between_probability_and_rate() -> None:
    labels = np.array([1] * 20 + [0] * 80)
    assert calibration_error(labels, np.full(100, 0.2)) == pytest.approx(0.0)
    assert calibration_error(labels, np.full(100, 0.5)) == pytest.approx(0.3)


def test_each_source_and_version_is_its_own_group_and_the_last_answer_counts() -> None:
    predictions, labels, _ = _predictions(50)
    served = predictions.assign(source="traffic", model_version="4", ts=1.0)
    # the same users asked again later, answered with certainty: only these answers count
    again = served.assign(
        ts=2.0, churn_probability=labels.to_numpy().astype(float), churn=labels.to_numpy() == 1
    )
    quality = realized_quality(pd.concat([predictions, again, served]), labels)
    overall = quality[quality["segment"] == ALL].set_index(["source", "model_version"])
    assert sorted(overall.index) == [("batch", "3"), ("traffic", "4")]
    assert overall.loc[("traffic", "4"), "roc_auc"] == 1.0
    assert overall.loc[("traffic", "4"), "users"] == 50


def test_segments_with_too_few_users_are_left_out_and_a_missing_column_named() -> None:
    predictions, labels, _ = _predictions(300)
    segments = pd.DataFrame(
        {"plan": ["30"] * 290 + ["410"] * 10}, index=predictions["msno"].to_numpy()
    )
    quality = realized_quality(predictions, labels, segments=segments, min_users=50)
    assert set(zip(quality["segment"], quality["value"], strict=True)) == {
        (ALL, ALL),
        ("plan", "30"),
    }
    assert quality.set_index("value").loc["30", "users"] == 290
    with pytest.raises(ValueError, match=r"lack the column\(s\) \['model_version'\]"):
        realized_quality(predictions.drop(columns="model_version"), labels)


def test_the_whole_cohort_is_measured_however_few_its_users() -> None:
    """A cohort smaller than the segment floor still has its realized quality: the policy's
    evidence (a cycle with min_segment_users above the cohort's size recorded none)."""
    predictions, labels, _ = _predictions(300)
    segments = pd.DataFrame({"plan": ["30"] * 300}, index=predictions["msno"].to_numpy())
    quality = realized_quality(predictions, labels, segments=segments, min_users=1000)
    assert list(zip(quality["segment"], quality["users"], strict=True)) == [(ALL, 300)]
