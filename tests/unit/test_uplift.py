"""The uplift model and the rules that judge a targeting against the true effect
(``churn_transform.modelling.uplift``): hand-computed curves, then a population where the
sure leavers are the ones an offer cannot save."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.uplift import (
    Targeted,
    UpliftConfig,
    as_metrics,
    campaign_users,
    compare,
    fit_uplift,
    qini,
    save_value,
    target,
    uplift_auc,
    uplift_curve,
)

# Ranked by score: 0.9 (effect 0.3), 0.5 (0.0), 0.4 (0.1), 0.1 (-0.1).
EFFECT = np.array([0.1, 0.3, -0.1, 0.0])
SCORE = np.array([0.4, 0.9, 0.1, 0.5])


def test_the_uplift_curve_sums_the_true_effect_of_the_top_users_per_cohort_user() -> None:
    expected = np.array([0.0, 0.3, 0.3, 0.4, 0.3]) / 4
    np.testing.assert_allclose(uplift_curve(EFFECT, SCORE), expected)


def test_tied_scores_share_their_mean_effect_so_a_constant_score_is_random_targeting() -> None:
    np.testing.assert_allclose(uplift_curve(EFFECT, np.zeros(4)), np.arange(5) * 0.075 / 4)
    # the two tied at 0.5 share (0.0 + 0.1) / 2 whichever comes first
    tied = np.array([0.5, 0.9, 0.1, 0.5])
    np.testing.assert_allclose(uplift_curve(EFFECT, tied), np.array([0, 0.3, 0.35, 0.4, 0.3]) / 4)


def test_uplift_auc_is_the_trapezoid_area_under_the_curve() -> None:
    # 0.25 * (0/2 + 0.075 + 0.075 + 0.1 + 0.075/2)
    assert uplift_auc(EFFECT, SCORE) == pytest.approx(0.071875)
    assert uplift_auc(EFFECT, np.zeros(4)) == pytest.approx(EFFECT.mean() / 2)


def test_qini_compares_the_area_over_random_with_the_best_order_s() -> None:
    # best order 0.3, 0.1, 0.0, -0.1: area 0.078125; random 0.0375
    assert qini(EFFECT, SCORE) == pytest.approx((0.071875 - 0.0375) / (0.078125 - 0.0375))
    assert qini(EFFECT, EFFECT) == pytest.approx(1.0)
    assert qini(EFFECT, np.ones(4)) == pytest.approx(0.0)
    assert qini(EFFECT, -EFFECT) < 0


def test_qini_refuses_effects_that_no_ranking_can_order() -> None:
    with pytest.raises(ValueError, match="all equal"):
        qini(np.full(3, 0.2), np.array([1.0, 2.0, 3.0]))


def test_the_curve_refuses_scores_and_effects_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="4 effects for 3 scores"):
        uplift_curve(EFFECT, SCORE[:3])


def test_the_curve_refuses_a_nan_score() -> None:
    with pytest.raises(ValueError, match="1 score\\(s\\) and 0 effect\\(s\\) are NaN"):
        uplift_curve(EFFECT, np.array([0.1, np.nan, 0.2, 0.3]))


def test_targeting_counts_the_true_effects_and_values_of_the_top_k_minus_the_offers() -> None:
    value = np.array([100.0, 200.0, 50.0, 80.0])
    top = target("by score", EFFECT, SCORE, value, offer_cost=10.0, size=2)
    # the users of effect 0.3 (worth 200) and 0.0 (worth 80)
    assert (top.saves, top.net_value) == pytest.approx((0.3, 0.3 * 200 - 20))
    random = target("random", EFFECT, None, value, offer_cost=10.0, size=2)
    mean_value = (0.1 * 100 + 0.3 * 200 - 0.1 * 50) / 4
    assert (random.saves, random.net_value) == pytest.approx((2 * 0.075, 2 * mean_value - 20))


def test_compare_puts_random_and_the_oracle_s_best_beside_each_rule() -> None:
    rows = compare(EFFECT, {"score": SCORE}, np.ones(4), 0.0, size=1)
    assert [row.rule for row in rows] == ["score", "random", "oracle best"]
    assert rows[-1].saves == pytest.approx(0.3)


def test_the_metrics_name_each_rule_size_and_score() -> None:
    rows = [Targeted("uplift (X-learner)", 191, 54.5, 6197.0)]
    assert as_metrics(rows, {"oracle best": {"qini": 1.0}}) == {
        "uplift_x_learner_k191_saves": 54.5,
        "uplift_x_learner_k191_net_value": 6197.0,
        "oracle_best_qini": 1.0,
    }


def test_a_campaign_larger_than_the_cohort_is_refused() -> None:
    with pytest.raises(ValueError, match="campaign size 5 outside 0..4"):
        target("x", EFFECT, SCORE, np.ones(4), 1.0, 5)


def test_a_saved_free_plan_user_is_worth_the_median_paying_month() -> None:
    gold = pd.DataFrame({"last_list_price": [149, 0, 447, 99], "last_plan_days": [30, 30, 90, 30]})
    np.testing.assert_allclose(save_value(gold), [149.0, 149.0, 149.0, 99.0])


GOLD = pd.DataFrame({"msno": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})


def test_campaign_users_joins_the_flag_to_the_gold_rows_in_the_log() -> None:
    log = pd.DataFrame({"msno": ["c", "a", "z"], "treated": [1, 0, 1]})
    joined = campaign_users(GOLD, log)
    assert joined[["msno", "treated"]].values.tolist() == [["a", 0], ["c", 1]]


@pytest.mark.parametrize(
    ("log", "message"),
    [
        (pd.DataFrame({"msno": ["a", "b"], "treated": [1, 2]}), "row 1: treated is 2, not 0/1"),
        (pd.DataFrame({"msno": ["a", "a"], "treated": [1, 0]}), "user 'a' is logged twice"),
        (pd.DataFrame({"msno": ["a"]}), "no column 'treated'"),
        (pd.DataFrame({"msno": ["q"], "treated": [1]}), "no user of the gold table"),
    ],
)
def test_a_bad_campaign_log_is_refused_naming_the_rule(log: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        campaign_users(GOLD, log)


def test_a_group_without_churners_cannot_be_fitted() -> None:
    features = pd.DataFrame({"x": np.arange(6, dtype=float)})
    with pytest.raises(ValueError, match="the control group \\(3 users\\) needs churners"):
        fit_uplift(
            features, np.array([1, 1, 1, 0, 0, 0]), np.array([1, 0, 1, 0, 0, 0]), UpliftConfig()
        )


def test_an_unknown_learner_is_refused() -> None:
    with pytest.raises(ValueError, match="learner must be 'x' .* got 's'"):
        UpliftConfig(learner="s")  # type: ignore[arg-type]


def _population(
    users: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Sure leavers (``decided`` 1: churn 0.85, an offer changes nothing) and the rest (churn
    0.3, an offer saving up to 0.25 as ``reachable`` grows): churn probability and effect."""
    decided = (rng.random(users) < 0.2).astype(float)
    reachable = rng.random(users)
    features = pd.DataFrame(
        {"decided": decided, "reachable": reachable, "noise": rng.random(users)}
    )
    churn = np.where(decided == 1, 0.85, 0.3)
    effect = np.where(decided == 1, 0.0, 0.25 * reachable)
    return features, churn, effect


@pytest.mark.parametrize("learner", ["x", "t"])
def test_targeting_by_uplift_beats_targeting_by_churn_probability(learner: str) -> None:
    rng = np.random.default_rng(7)
    features, churn, effect = _population(8000, rng)
    treated = rng.random(8000) < 0.5
    label = rng.random(8000) < np.where(treated, churn - effect, churn)
    config = UpliftConfig(learner=learner, min_child_samples=100)  # type: ignore[arg-type]
    model = fit_uplift(features, treated, label, config)
    judged, judged_churn, judged_effect = _population(3000, rng)
    uplift = model.predict(judged)
    # the churn rule gets the TRUE churn probability: no model of it could rank better
    by_uplift, by_churn, random, best = compare(
        judged_effect, {"uplift": uplift, "churn": judged_churn}, np.full(3000, 150.0), 10.0, 600
    )
    assert by_uplift.saves > 1.5 * by_churn.saves
    assert by_uplift.net_value > by_churn.net_value
    assert 0.8 * best.saves < by_uplift.saves <= best.saves
    assert qini(judged_effect, uplift) > qini(judged_effect, judged_churn) + 0.3
