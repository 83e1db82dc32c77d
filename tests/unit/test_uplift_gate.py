"""The uplift model's gate (``churn_transform.modelling.uplift_gate``): the observed Qini of
hand-computed campaigns, then promote, refuse and keep the champion on known Qini values."""

from __future__ import annotations

import numpy as np
import pytest

from churn_transform.modelling.promotion import Outcome, PromotionOutcome
from churn_transform.modelling.uplift_gate import (
    QiniEstimate,
    UpliftGate,
    decide,
    estimate,
    observed_qini,
    observed_uplift_auc,
    observed_uplift_curve,
)

# Ranked by score: an offered renewer and a control churner first (the offer saved), then an
# offered churner and a control renewer (it did not).
TREATED = np.array([1, 0, 1, 0])
CHURNED = np.array([0, 1, 1, 0])
SCORE = np.array([0.9, 0.8, 0.2, 0.1])


def test_the_observed_curve_is_the_churn_rate_gap_times_the_share_targeted() -> None:
    curve = observed_uplift_curve(TREATED, CHURNED, SCORE)
    # k=1: nobody in the control yet; k=2: (1 - 0) * 2/4; k=3: (1 - 1/2) * 3/4; k=4: 1/2 - 1/2
    np.testing.assert_allclose(curve, [0.0, 0.0, 2 / 4, 1.5 / 4, 0.0])


def test_the_observed_qini_is_the_area_above_the_diagonal() -> None:
    auc = (0 + 0 + 0.5 + 0.375) / 4 - (0 + 0) / 8  # trapezoids with dx 1/4, both ends at 0
    assert observed_uplift_auc(TREATED, CHURNED, SCORE) == pytest.approx(auc)
    assert observed_qini(TREATED, CHURNED, SCORE) == pytest.approx(auc)  # the diagonal ends at 0
    assert observed_qini(TREATED, CHURNED, -SCORE) < 0  # the savers last: worse than random


def test_a_constant_score_is_random_targeting_with_a_qini_of_zero() -> None:
    rng = np.random.default_rng(1)
    treated, churned = rng.random(400) < 0.5, rng.random(400) < 0.3
    assert observed_qini(treated, churned, np.zeros(400)) == pytest.approx(0.0, abs=1e-12)


def test_the_curve_refuses_a_nan_score_and_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="NaN"):
        observed_uplift_curve(TREATED, CHURNED, np.array([0.1, np.nan, 0.2, 0.3]))
    with pytest.raises(ValueError, match="4 treated flags, 4 outcomes and 3 scores"):
        observed_uplift_curve(TREATED, CHURNED, SCORE[:3])


def test_the_interval_holds_the_estimate_and_lies_above_zero_for_savers_first() -> None:
    rng = np.random.default_rng(3)
    reachable = rng.random(3000)
    treated = rng.random(3000) < 0.5
    churned = rng.random(3000) < np.where(treated, 0.4 - 0.3 * reachable, 0.4)
    found = estimate(treated, churned, reachable, draws=100)
    assert found.low <= found.value <= found.high
    assert found.low > 0 and found.users == 3000


SURE = QiniEstimate(0.012, 0.004, 0.020, 2000)
UNSURE = QiniEstimate(0.012, -0.001, 0.025, 500)


def test_a_first_candidate_surely_above_random_is_promoted() -> None:
    outcome = decide("3", SURE, None, UpliftGate(), "champion")
    assert outcome == PromotionOutcome(Outcome.PROMOTED, "3", "champion")


def test_a_candidate_whose_interval_reaches_zero_is_refused_even_without_a_champion() -> None:
    outcome = decide("3", UNSURE, None, UpliftGate(), "champion")
    assert outcome.refused and outcome.outcome is Outcome.BELOW_FLOOR
    assert "not surely above 0" in outcome.refusal() and "-0.00100" in outcome.refusal()


def test_a_candidate_below_the_champion_on_the_same_users_keeps_the_champion() -> None:
    champion = ("2", QiniEstimate(0.015, 0.007, 0.022, 2000))
    outcome = decide("3", SURE, champion, UpliftGate(margin=0.001), "champion")
    assert outcome.outcome is Outcome.BEHIND and outcome.champion == "2"
    assert not outcome.promoted


@pytest.mark.parametrize("champion_qini", [0.012, 0.0125, 0.005])
def test_a_candidate_within_the_margin_of_the_champion_or_above_it_is_promoted(
    champion_qini: float,
) -> None:
    champion = ("2", QiniEstimate(champion_qini, 0.001, 0.02, 2000))
    outcome = decide("3", SURE, champion, UpliftGate(margin=0.001), "champion")
    assert outcome.promoted and outcome.champion == "2"


def test_the_outcome_survives_its_json_record() -> None:
    outcome = decide("3", UNSURE, ("2", SURE), UpliftGate(), "champion")
    assert PromotionOutcome.from_json(outcome.to_json()) == outcome
