"""What a campaign would contact, save and earn under other terms: an offer's cost, a budget and a
control share, recomputed from the scored cohort (the dashboard's Campaign tab asks it).

The rule: an offer to a user saves them with probability ``uplift`` when an uplift model scored
them, else ``acceptance * churn probability`` (``modelling.campaign``'s rule); a save is worth
the user's ``value`` (``campaign.monthly_price``: a month of their plan). Users are ranked by
expected saved value, and the list is every user whose offer is worth more than it costs, cut to
the ``budget / offer_cost`` the budget pays for. The control share is then held out of that list
at random (never contacted, so next month's verdict compares like with like); the others are
contacted. Figures are expectations, money in the plans' currency (NTD in KKBox's data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WhatIf:
    """A campaign's figures under one set of terms. ``listed`` users are chosen, ``control`` of
    them held out and ``contacted`` the rest; ``budget_binds`` when the budget cut the list
    short of every user worth an offer (``worth_an_offer``)."""

    worth_an_offer: int
    listed: int
    control: int
    contacted: int
    expected_saves: float
    saved_value: float
    cost: float
    net_value: float
    budget_binds: bool


def _check(name: str, values: np.ndarray, low: float, high: float) -> None:
    outside = np.isnan(values) | (values < low) | (values > high)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"{name} of row {row} is {values[row]}, outside {low:g}..{high:g} "
            f"({int(outside.sum())} such row(s))"
        )


def _check_terms(offer_cost: float, budget: float, control_share: float, acceptance: float) -> None:
    terms = {
        "offer_cost": (offer_cost, 0.0, math.inf),
        "budget": (budget, 0.0, math.inf),
        "control_share": (control_share, 0.0, 1.0),
        "acceptance": (acceptance, 0.0, 1.0),
    }
    for name, (value, low, high) in terms.items():
        if math.isnan(value) or not low <= value <= high:
            raise ValueError(f"{name} is {value}, outside {low:g}..{high:g}")
    if offer_cost == math.inf:
        raise ValueError("offer_cost is inf: an offer must have a finite cost")


def save_chances(
    probability: np.ndarray, acceptance: float, uplift: np.ndarray | None = None
) -> np.ndarray:
    """Each user's chance that an offer keeps them: ``uplift`` when given (an offer's drop in
    churn probability, which may be negative), else ``acceptance`` times the churn probability."""
    probability = np.asarray(probability, float)
    _check("churn_probability", probability, 0.0, 1.0)
    if uplift is None:
        return acceptance * probability
    uplift = np.asarray(uplift, float)
    if uplift.shape != probability.shape:
        raise ValueError(f"{len(uplift)} uplifts for {len(probability)} churn probabilities")
    _check("uplift", uplift, -1.0, 1.0)
    return uplift


def what_if(
    probability: np.ndarray,
    value: np.ndarray,
    *,
    offer_cost: float,
    acceptance: float,
    budget: float = math.inf,
    control_share: float = 0.0,
    uplift: np.ndarray | None = None,
) -> WhatIf:
    """The campaign's size, expected saves and net value for these terms (the module's rule).
    ``budget`` inf is no budget; a free offer (``offer_cost`` 0) is never cut by the budget.
    Raises naming the term or the row (and column) out of range."""
    _check_terms(offer_cost, budget, control_share, acceptance)
    saves = save_chances(probability, acceptance, uplift)
    value = np.asarray(value, float)
    if value.shape != saves.shape:
        raise ValueError(f"{len(value)} values for {len(saves)} churn probabilities")
    _check("value", value, 0.0, math.inf)
    worth = saves * value
    order = np.argsort(-worth, kind="stable")
    worth_an_offer = int((worth > offer_cost).sum())
    listed = worth_an_offer
    if offer_cost > 0 and budget < offer_cost * worth_an_offer:
        # a budget of 0.3 buys 3 offers of 0.1, though 0.3 / 0.1 is 2.9999999999999996
        listed = math.floor(budget / offer_cost * (1 + 1e-12))
    control = math.floor(control_share * listed + 0.5)
    contacted = listed - control
    top = order[:listed]
    # the control is a random draw from the list: each listed user is contacted with one chance
    reach = contacted / listed if listed else 0.0
    expected_saves = reach * float(saves[top].sum())
    saved_value = reach * float(worth[top].sum())
    cost = offer_cost * contacted
    return WhatIf(
        worth_an_offer,
        listed,
        control,
        contacted,
        expected_saves,
        saved_value,
        cost,
        saved_value - cost,
        listed < worth_an_offer,
    )
