"""Who the retention team contacts: a ranked campaign list, its size chosen by expected value.

Contacting a subscriber costs ``offer_cost``; an offer keeps a would-be churner with probability
``acceptance``, saving one month of their plan. So contacting a user whose churn probability is
``p`` is worth ``acceptance * p * monthly_price - offer_cost`` in expectation. Users are ranked
by probability (the model's ranking, as the lift chart shows it) and the campaign takes the top
``k``, with ``k`` the size of greatest total expected value. Money is in the plans' currency
(NTD in KKBox's data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def monthly_price(gold: pd.DataFrame) -> np.ndarray:
    """The list price of each user's current plan per 30 days (0 where unknown or free)."""
    price = pd.to_numeric(gold["last_list_price"], errors="coerce").to_numpy(float)
    days = pd.to_numeric(gold["last_plan_days"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        monthly = np.where(days > 0, price / days * 30, 0.0)
    return np.nan_to_num(monthly, nan=0.0)


@dataclass(frozen=True)
class Choice:
    """The campaign size chosen, the probability of its last user, and why."""

    size: int
    cut: float
    expected_value: float
    reason: str


def choose(
    probability: np.ndarray, monthly: np.ndarray, offer_cost: float, acceptance: float
) -> tuple[np.ndarray, Choice]:
    """The ranking (indices, highest probability first) and the size of best expected value."""
    order = np.argsort(-probability, kind="stable")
    gain = acceptance * probability[order] * monthly[order] - offer_cost
    total = np.concatenate([[0.0], np.cumsum(gain)])
    size = int(np.argmax(total))
    cut = float(probability[order][size - 1]) if size else 1.0
    reason = (
        f"contacting the {size:,} users of highest churn probability (down to {cut:.3f}) of "
        f"{len(order):,} has the greatest expected net value, {total[size]:,.0f}: each offer costs "
        f"{offer_cost:g} and keeps {acceptance:.0%} of churners for a month of their plan"
    )
    return order, Choice(size, cut, float(total[size]), reason)


def targeted(
    probability: np.ndarray, monthly: np.ndarray, offer_cost: float, acceptance: float
) -> np.ndarray:
    """Whether each user is in the campaign ``choose`` sizes: the campaign cut, per user."""
    order, choice = choose(probability, monthly, offer_cost, acceptance)
    chosen = np.zeros(len(probability), dtype=bool)
    chosen[order[: choice.size]] = True
    return chosen


def campaign_list(
    scores: pd.DataFrame, gold: pd.DataFrame, offer_cost: float, acceptance: float
) -> tuple[pd.DataFrame, Choice]:
    """The ranked list: ``scores`` (msno, churn_probability, churn, then any columns) in the
    order of ``gold``'s rows, with ``target``, revenue at risk and the expected net value of an
    offer after the first three columns."""
    probability = scores["churn_probability"].to_numpy(float)
    monthly = monthly_price(gold)
    order, choice = choose(probability, monthly, offer_cost, acceptance)
    listed = scores.iloc[order].reset_index(drop=True)
    listed.insert(3, "target", np.arange(len(listed)) < choice.size)
    listed.insert(4, "revenue_at_risk", (probability * monthly)[order])
    listed.insert(5, "offer_value", (acceptance * probability * monthly - offer_cost)[order])
    return listed, choice


def targeting_value(
    label: np.ndarray,
    probability: np.ndarray,
    monthly: np.ndarray,
    offer_cost: float,
    acceptance: float,
) -> dict[str, float]:
    """On a labelled cohort: what the campaign chosen from the model's probabilities earns,
    and what contacting as many users at random would earn, from the users who did churn."""
    order, choice = choose(probability, monthly, offer_cost, acceptance)
    churned = np.asarray(label) == 1
    saved = acceptance * monthly * churned
    model = saved[order[: choice.size]].sum() - offer_cost * choice.size
    share = choice.size / max(len(label), 1)
    random = share * saved.sum() - offer_cost * choice.size
    return {
        "campaign_size": float(choice.size),
        "campaign_value_model": float(model),
        "campaign_value_random": float(random),
        "campaign_value_over_random": float(model - random),
    }


def gains(label: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    """Cumulative gains and lift by share of users contacted, highest probability first."""
    order = np.argsort(-probability, kind="stable")
    hits = np.cumsum(np.asarray(label)[order] == 1)
    contacted = np.arange(1, len(order) + 1) / len(order)
    captured = hits / max(hits[-1], 1) if len(hits) else hits
    return pd.DataFrame(
        {"contacted": contacted, "captured": captured, "lift": captured / contacted}
    )
