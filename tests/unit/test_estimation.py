"""Performance estimated before the labels (``monitoring.estimation``, CBPE) on known answers."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from sklearn.metrics import auc, precision_score, recall_score, roc_auc_score

from churn_transform.lake import Lake
from churn_transform.modelling.campaign import choose
from churn_transform.modelling.segments import SEGMENTS
from churn_transform.monitoring.estimation import (
    CampaignEstimate,
    CohortEstimate,
    estimate_campaign,
    estimate_performance,
    estimate_scores,
    estimate_segments,
    estimated_roc_auc,
    estimates,
    estimation_errors,
    estimation_metrics,
    estimation_table,
    write_estimate,
)
from churn_transform.monitoring.quality import ALL, realized_quality


def test_the_expected_confusion_matrix_of_four_users_is_the_sum_of_their_probabilities() -> None:
    # decided: 0.9 and 0.6 (TP 1.5, FP 0.5); not: 0.3 and 0.2 (FN 0.5, TN 1.5)
    found = estimate_performance(np.array([0.9, 0.6, 0.3, 0.2]), threshold=0.5)
    assert (found.true_positives, found.false_positives) == pytest.approx((1.5, 0.5))
    assert (found.false_negatives, found.true_negatives) == pytest.approx((0.5, 1.5))
    assert (found.precision, found.recall) == pytest.approx((0.75, 0.75))
    assert (found.expected_positive_rate, found.decision_rate) == pytest.approx((0.5, 0.5))
    assert found.rows == 4


def test_the_roc_auc_of_four_users_is_the_area_of_the_expected_rates() -> None:
    # expected (FPR, TPR) after each user: (.05,.45) (.25,.75) (.6,.9) (1,1); trapezoids:
    # .01125 + .12 + .28875 + .38 = 0.8
    assert estimated_roc_auc(np.array([0.2, 0.9, 0.3, 0.6])) == pytest.approx(0.8)


def test_a_probability_at_the_threshold_is_decided_churn() -> None:
    found = estimate_performance(np.array([0.4, 0.4, 0.1]), threshold=0.4)
    assert found.decision_rate == pytest.approx(2 / 3)
    assert found.precision == pytest.approx(0.4)
    assert found.recall == pytest.approx(0.8 / 0.9)


def _pairwise_auc(p: np.ndarray) -> float:
    """Reference: each (churner i, stayer j) pair weighs p_i (1 - p_j), counts 1 when i ranks
    above j and 1/2 when tied (the user with itself included, as the cumulative curve has it)."""
    above = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    weight = p[:, None] * (1 - p[None, :])
    return float((weight * above).sum() / (p.sum() * (1 - p).sum()))


def _nannyml_auc(p: np.ndarray) -> float:
    """NannyML's estimate_roc_auc (performance_estimation/confidence_based/metrics.py), for
    calibrated probabilities, without its rounding of the cumulative sums."""
    ranked = p[np.argsort(p)[::-1]]
    tps = np.r_[0, np.cumsum(ranked)]
    fps = np.r_[0, 1 + np.arange(len(ranked)) - np.cumsum(ranked)]
    return float(auc(fps / fps[-1], tps / tps[-1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_roc_auc_is_the_pairwise_reference_with_ties_sharing_a_point(seed: int) -> None:
    p = np.round(np.random.default_rng(seed).beta(2, 5, 300), 2)  # many ties
    assert estimated_roc_auc(p) == pytest.approx(_pairwise_auc(p))


def test_without_ties_the_roc_auc_is_nannyml_s() -> None:
    p = np.random.default_rng(3).uniform(0.01, 0.99, 500)
    assert estimated_roc_auc(p) == pytest.approx(_nannyml_auc(p))


def test_one_probability_for_everyone_estimates_a_roc_auc_of_one_half() -> None:
    assert estimated_roc_auc(np.full(10, 0.3)) == pytest.approx(0.5)


def test_figures_without_a_denominator_are_nan() -> None:
    nobody = estimate_performance(np.array([0.1, 0.2]), threshold=0.9)
    assert math.isnan(nobody.precision) and nobody.recall == pytest.approx(0.0)
    sure = estimate_performance(np.array([0.0, 0.0]), threshold=0.5)
    assert math.isnan(sure.roc_auc) and math.isnan(sure.recall)


@pytest.mark.parametrize("bad", [[0.2, 1.5], [0.2, np.nan], [-0.1, 0.3]])
def test_probabilities_outside_zero_and_one_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="1 of 2 probabilities are missing or outside"):
        estimate_performance(np.array(bad), threshold=0.5)


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities (a churn rate near KKBox's) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = expit(rng.normal(-2.5, 1.4, n))
    return p, (rng.uniform(size=n) < p).astype(int)


def _realized(labels: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    decided = p >= threshold
    return {
        "roc_auc": roc_auc_score(labels, p),
        "precision": precision_score(labels, decided),
        "recall": recall_score(labels, decided),
    }


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_on_calibrated_probabilities_the_estimate_is_the_realized_figure_within_its_error(
    seed: int,
) -> None:
    p, labels = _draw(20_000, seed)
    found = estimate_performance(p, threshold=0.3)
    realized = _realized(labels, p, 0.3)
    # four standard errors: a correct estimate misses by more about once in 16,000 draws
    assert abs(realized["roc_auc"] - found.roc_auc) <= 4 * found.roc_auc_standard_error
    assert abs(realized["precision"] - found.precision) <= 4 * found.precision_standard_error
    assert abs(realized["recall"] - found.recall) <= 4 * found.recall_standard_error
    assert found.roc_auc_standard_error < 0.01  # at 20,000 users the check means something


def test_the_standard_errors_are_the_spread_of_the_realized_figures_around_the_estimate() -> None:
    p, _ = _draw(3_000, 20)
    found = estimate_performance(p, threshold=0.3)
    rng = np.random.default_rng(21)
    draws = [_realized((rng.uniform(size=len(p)) < p).astype(int), p, 0.3) for _ in range(300)]
    for name in ("roc_auc", "precision", "recall"):
        errors = np.array([d[name] for d in draws]) - getattr(found, name)
        standard_error = getattr(found, f"{name}_standard_error")
        assert abs(errors.mean()) < 0.25 * standard_error, name  # unbiased
        assert errors.std() == pytest.approx(standard_error, rel=0.15), name


@pytest.mark.parametrize(
    ("slope", "direction"),
    [(2.0, +1), (0.5, -1)],
    ids=["overconfident: the estimate is too high", "underconfident: too low"],
)
def test_on_miscalibrated_probabilities_the_estimate_misses_in_the_expected_direction(
    slope: float, direction: int
) -> None:
    """The method's assumption: the probabilities are the churn rates. A model that ranks as
    well but is too sure (too unsure) expects its decisions to sort churners better (worse)
    than they do: the realized ROC AUC is the calibrated model's, the estimate is not."""
    p, labels = _draw(20_000, 30)
    served = expit(slope * logit(p))  # the same ranking, other probabilities
    found = estimate_performance(served, threshold=0.3)
    realized = roc_auc_score(labels, served)
    assert direction * (found.roc_auc - realized) > 4 * found.roc_auc_standard_error


def test_each_segment_value_is_estimated_on_its_own_users() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.2, 0.5])
    segments = pd.DataFrame({"city": ["1", "1", "2", "2", "3"], "gender": ["m"] * 5})
    found = {(s.segment, s.value): s.estimate for s in estimate_segments(p, 0.5, segments, 2)}
    assert set(found) == {("city", "1"), ("city", "2"), ("gender", "m")}  # city 3: one user
    assert found[("city", "2")] == estimate_performance(np.array([0.3, 0.2]), 0.5)
    assert found[("gender", "m")] == estimate_performance(p, 0.5)


def test_segments_of_another_length_are_refused() -> None:
    with pytest.raises(ValueError, match="segments has 1 rows for 2 probabilities"):
        estimate_segments(np.array([0.1, 0.2]), 0.5, pd.DataFrame({"city": ["1"]}))


def test_the_campaign_estimate_is_the_campaign_rule_s_choice() -> None:
    p, monthly = np.array([0.9, 0.5, 0.05]), np.array([150.0, 150.0, 150.0])
    _, choice = choose(p, monthly, offer_cost=20.0, acceptance=0.3)
    found = estimate_campaign(p, monthly, offer_cost=20.0, acceptance=0.3)
    assert found == CampaignEstimate(choice.size, choice.cut, choice.expected_value)
    assert found.size == 2 and found.expected_value == pytest.approx(0.3 * 1.4 * 150 - 40)


def _record(p: np.ndarray, segments: pd.DataFrame) -> CohortEstimate:
    return CohortEstimate(
        cohort="2017-05",
        model_version="3",
        threshold=0.3,
        overall=estimate_performance(p, 0.3),
        segments=estimate_segments(p, 0.3, segments),
        campaign=CampaignEstimate(2, 0.6, 12.5),
    )


def test_the_record_reads_back_as_written_nan_included() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.0])
    record = _record(p, pd.DataFrame({"city": ["1", "1", "2", "2"]}))
    back = CohortEstimate.from_json(record.to_json())
    assert back.overall == record.overall and back.campaign == record.campaign
    assert back.segments[1].estimate.rows == 2
    nothing = replace(record, overall=estimate_performance(np.zeros(2), 0.3), campaign=None)
    assert '"roc_auc": null' in nothing.to_json()  # strict JSON, for any reader
    assert math.isnan(CohortEstimate.from_json(nothing.to_json()).overall.roc_auc)


def test_a_record_without_a_field_is_refused_naming_it() -> None:
    text = _record(np.array([0.9, 0.1]), pd.DataFrame({"city": ["1", "2"]})).to_json()
    with pytest.raises(ValueError, match="threshold"):
        CohortEstimate.from_json(text.replace('"threshold"', '"cut"'))


def test_the_estimation_error_is_realized_minus_estimated_per_segment() -> None:
    p, labels = _draw(2_000, 40)
    msno = [f"u{i}" for i in range(len(p))]
    segments = pd.DataFrame({"auto_renew": np.where(np.arange(len(p)) % 3, "on", "off")})
    predictions = pd.DataFrame(
        {"msno": msno, "churn_probability": p, "churn": p >= 0.3, "model_version": "3"}
    ).assign(source="batch")
    realized = realized_quality(
        predictions,
        pd.Series(labels, index=msno),
        segments=segments.set_axis(msno),
        oracle=pd.Series(p, index=msno),
    )
    errors = estimation_errors(_record(p, segments), realized).set_index(["segment", "value"])
    assert list(errors.index) == [(ALL, ALL), ("auto_renew", "off"), ("auto_renew", "on")]
    off = (segments["auto_renew"] == "off").to_numpy()
    expected = roc_auc_score(labels[off], p[off]) - estimated_roc_auc(p[off])
    assert errors.loc[("auto_renew", "off"), "estimation_error_roc_auc"] == pytest.approx(expected)
    overall = errors.loc[(ALL, ALL)]
    assert overall["realized_precision"] - overall["estimated_precision"] == pytest.approx(
        overall["estimation_error_precision"]
    )
    assert overall["oracle_roc_auc"] == pytest.approx(roc_auc_score(labels, p))


def _scores(p: np.ndarray) -> pd.DataFrame:
    """``monitoring.scoring.score``'s columns that the estimate reads."""
    segments = {name: ["a", "b"] * (len(p) // 2) for name in SEGMENTS}
    plans = {"last_list_price": 149.0, "last_plan_days": 30}
    return pd.DataFrame({"churn_probability": p, **segments, **plans})


def test_a_scoring_s_record_holds_the_cohort_every_segment_and_the_campaign() -> None:
    p = np.array([0.9, 0.6, 0.3, 0.2])
    record = estimate_scores(_scores(p), "2017-05", "3", 0.5, offer_cost=20, acceptance=0.3)
    assert record.overall == estimate_performance(p, 0.5)
    assert {(s.segment, s.value) for s in record.segments} == {
        (name, value) for name in SEGMENTS for value in "ab"
    }
    assert record.campaign == estimate_campaign(p, np.full(4, 149.0), 20, 0.3)


def test_the_lake_gives_back_every_scoring_s_estimate_oldest_first(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    first = _record(np.array([0.9, 0.1]), pd.DataFrame({"city": ["1", "2"]}))
    second = replace(first, model_version="4")
    write_estimate(lake, "run-b", first)
    time.sleep(0.01)  # the order is the files' modification times
    write_estimate(lake, "run-a", second)
    # as JSON: a figure without a denominator is NaN, which equals nothing
    assert [e.to_json() for e in estimates(lake, "2017-05")] == [first.to_json(), second.to_json()]
    assert estimates(lake, "2017-06") == []


def test_each_version_is_compared_through_its_latest_estimate_and_named_as_quality_names_it() -> (
    None
):
    p, labels = _draw(1_000, 50)
    msno = [f"u{i}" for i in range(len(p))]
    predictions = pd.DataFrame(
        {"msno": msno, "churn_probability": p, "churn": p >= 0.3, "model_version": "3"}
    ).assign(source="batch")
    realized = realized_quality(predictions, pd.Series(labels, index=msno))
    segments = pd.DataFrame({"city": ["1"] * len(p)})
    stale = replace(_record(p, segments), overall=estimate_performance(np.full(len(p), 0.5), 0.3))
    unmeasured = replace(_record(p, segments), model_version="9")
    table = estimation_table([stale, _record(p, segments), unmeasured], realized)
    assert table["model_version"].unique().tolist() == ["3"]
    overall = table[table["segment"] == ALL].iloc[0]
    assert overall["estimated_roc_auc"] == pytest.approx(estimated_roc_auc(p))
    metrics = estimation_metrics(table)
    assert metrics["batch.v3.estimated_roc_auc"] == pytest.approx(estimated_roc_auc(p))
    assert metrics["batch.v3.estimation_error_roc_auc"] == pytest.approx(
        roc_auc_score(labels, p) - estimated_roc_auc(p)
    )
    assert (
        estimation_table([unmeasured], realized).empty and estimation_metrics(pd.DataFrame()) == {}
    )
