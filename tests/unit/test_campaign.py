"""The campaign: revenue at risk, the size of greatest expected value, value against random."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_transform.modelling.campaign import (
    campaign_list,
    choose,
    gains,
    monthly_price,
    targeting_value,
)


def test_monthly_price_is_the_list_price_per_30_plan_days_and_0_when_unknown() -> None:
    gold = pd.DataFrame(
        {"last_list_price": [149.0, 447.0, np.nan, 99.0], "last_plan_days": [30, 90, 30, 0.0]}
    )
    np.testing.assert_allclose(monthly_price(gold), [149.0, 149.0, 0.0, 0.0])


def test_the_campaign_stops_where_an_offer_no_longer_pays() -> None:
    # offer value 0.5 * p * 100 - 10: 5, 35, -5, -7.5
    probability = np.array([0.3, 0.9, 0.1, 0.05])
    order, choice = choose(probability, np.full(4, 100.0), offer_cost=10, acceptance=0.5)
    assert order.tolist() == [1, 0, 2, 3]
    assert (choice.size, choice.cut, choice.expected_value) == (2, 0.3, 40.0)
    assert "contacting the 2 users" in choice.reason and "costs 10" in choice.reason


def test_nobody_is_contacted_when_no_offer_pays() -> None:
    _, choice = choose(np.array([0.2, 0.1]), np.full(2, 10.0), offer_cost=50, acceptance=1)
    assert choice.size == 0 and choice.expected_value == 0


def test_the_list_is_ranked_with_its_targets_first() -> None:
    scores = pd.DataFrame(
        {"msno": ["a", "b", "c"], "churn_probability": [0.1, 0.8, 0.5], "churn": [0, 1, 1]}
    )
    gold = pd.DataFrame({"last_list_price": [149.0, 149.0, 99.0], "last_plan_days": [30] * 3})
    listed, choice = campaign_list(scores, gold, offer_cost=10, acceptance=0.3)
    assert listed["msno"].tolist() == ["b", "c", "a"]
    assert listed["target"].tolist() == [True, True, False] and choice.size == 2
    assert listed["revenue_at_risk"].tolist() == pytest.approx([0.8 * 149, 0.5 * 99, 0.1 * 149])


def test_a_model_that_ranks_the_churners_first_beats_random_targeting() -> None:
    label = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    probability = np.array([0.9, 0.8, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    value = targeting_value(label, probability, np.full(10, 100.0), offer_cost=10, acceptance=0.5)
    assert value["campaign_size"] == 2
    assert value["campaign_value_model"] == 2 * 50 - 20
    assert value["campaign_value_random"] == pytest.approx(0.2 * 100 - 20)


def test_gains_reach_every_churner_and_lift_starts_at_the_inverse_churn_rate() -> None:
    curve = gains(np.array([0, 1, 0, 0]), np.array([0.1, 0.9, 0.2, 0.3]))
    assert curve["captured"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert curve["lift"].iloc[0] == 4.0
