"""The what-if: a campaign's size, saves and net value under another offer cost, budget and
control share, hand-computed on four users."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churn_transform.modelling.campaign import choose
from churn_transform.modelling.whatif import WhatIf, what_if

# acceptance 0.3: save chances 0.27, 0.15, 0.06, 0.03; saved value 27, 15, 12, 1.5
PROBABILITY = np.array([0.9, 0.5, 0.2, 0.1])
VALUE = np.array([100.0, 100.0, 200.0, 50.0])


def _what_if(**terms: float) -> WhatIf:
    return what_if(PROBABILITY, VALUE, **{"offer_cost": 10.0, "acceptance": 0.3, **terms})


def test_without_a_budget_every_user_worth_more_than_the_offer_is_contacted() -> None:
    found = _what_if()
    assert (found.worth_an_offer, found.listed, found.control, found.contacted) == (3, 3, 0, 3)
    assert found.expected_saves == pytest.approx(0.48)
    assert (found.saved_value, found.cost) == (pytest.approx(54.0), 30.0)
    assert found.net_value == pytest.approx(24.0)
    assert not found.budget_binds


def test_a_binding_budget_keeps_the_users_of_highest_value() -> None:
    found = _what_if(budget=25.0)  # pays for 2 offers: the users worth 27 and 15
    assert (found.listed, found.contacted, found.cost) == (2, 2, 20.0)
    assert found.expected_saves == pytest.approx(0.42)
    assert found.net_value == pytest.approx(22.0)
    assert found.budget_binds


def test_a_budget_above_the_worthwhile_list_changes_nothing() -> None:
    assert _what_if(budget=40.0) == _what_if()


def test_the_control_share_is_held_out_of_the_list_at_random() -> None:
    found = _what_if(control_share=1 / 3)
    assert (found.listed, found.control, found.contacted) == (3, 1, 2)
    # each of the 3 listed is contacted with chance 2/3
    assert found.expected_saves == pytest.approx(0.32)
    assert (found.saved_value, found.cost) == (pytest.approx(36.0), 20.0)
    assert found.net_value == pytest.approx(16.0)


def test_the_control_comes_out_of_the_list_the_budget_paid_for() -> None:
    found = _what_if(budget=25.0, control_share=0.5)
    assert (found.listed, found.control, found.contacted) == (2, 1, 1)
    assert found.net_value == pytest.approx(21.0 - 10.0)


def test_a_free_offer_goes_to_everyone_it_may_save_whatever_the_budget() -> None:
    found = _what_if(offer_cost=0.0, budget=0.0)
    assert (found.listed, found.contacted, found.cost) == (4, 4, 0.0)
    assert found.net_value == pytest.approx(55.5)
    assert not found.budget_binds


def test_a_budget_buys_every_offer_it_pays_for_in_full_despite_rounding() -> None:
    assert _what_if(offer_cost=0.1, budget=0.3).listed == 3


def test_no_budget_contacts_nobody() -> None:
    found = _what_if(budget=0.0)
    assert (found.listed, found.contacted, found.expected_saves, found.net_value) == (0, 0, 0, 0)


def test_an_uplift_replaces_acceptance_times_probability() -> None:
    # saved value 0, 20, -20, 15: the users worth 20 and 15, whatever the acceptance
    uplift = np.array([0.0, 0.2, -0.1, 0.3])
    found = what_if(PROBABILITY, VALUE, offer_cost=10.0, acceptance=1.0, uplift=uplift)
    assert (found.listed, found.expected_saves) == (2, pytest.approx(0.5))
    assert found.net_value == pytest.approx(35.0 - 20.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_with_one_value_for_all_it_is_the_campaign_lists_rule(seed: int) -> None:
    probability = np.random.default_rng(seed).uniform(size=200)
    value = np.full(200, 149.0)
    _, choice = choose(probability, value, offer_cost=20.0, acceptance=0.3)
    found = what_if(probability, value, offer_cost=20.0, acceptance=0.3)
    assert found.listed == choice.size
    assert found.net_value == pytest.approx(choice.expected_value)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"offer_cost": -1.0}, "offer_cost is -1.0, outside 0..inf"),
        ({"offer_cost": math.inf}, "offer_cost is inf"),
        ({"budget": math.nan}, "budget is nan"),
        ({"budget": -5.0}, "budget is -5.0"),
        ({"control_share": 1.5}, "control_share is 1.5, outside 0..1"),
        ({"acceptance": 2.0}, "acceptance is 2.0, outside 0..1"),
    ],
)
def test_a_term_out_of_range_is_named(terms: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _what_if(**terms)


def test_a_row_out_of_range_is_named_with_its_column() -> None:
    with pytest.raises(ValueError, match=r"churn_probability of row 2 is 1.2, outside 0..1"):
        what_if(np.array([0.1, 0.2, 1.2]), np.ones(3), offer_cost=1.0, acceptance=0.3)
    with pytest.raises(ValueError, match=r"value of row 1 is -5.0"):
        what_if(np.array([0.1, 0.2]), np.array([1.0, -5.0]), offer_cost=1.0, acceptance=0.3)
    with pytest.raises(ValueError, match=r"uplift of row 0 is nan"):
        what_if(
            np.array([0.1]), np.ones(1), offer_cost=1, acceptance=0.3, uplift=np.array([np.nan])
        )


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="3 values for 2 churn probabilities"):
        what_if(np.array([0.1, 0.2]), np.ones(3), offer_cost=1.0, acceptance=0.3)
