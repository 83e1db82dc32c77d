"""How far the model's reasons agree with the oracle's: the check of explanations against truth.

The oracle's logit is a weighted sum of drivers, so its true reason for a user is each driver's
term measured from the cohort's average term (for a linear logit, that is exactly what an
additive explanation against the average prediction should find). The model's reasons are per
gold feature; each oracle driver is read from the gold features that carry it (a driver may
show in several: the trend of listening in every listening window), and features that carry no
driver are left out of the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

#: Oracle driver -> the gold features that carry it.
DRIVER_FEATURES: dict[str, tuple[str, ...]] = {
    "no_auto_renew": ("last_is_auto_renew", "auto_renew_share"),
    "last_is_cancel": ("last_is_cancel",),
    "cancels_365": ("cancel_count", "cancel_count_365", "days_since_last_cancel"),
    "long_plan": ("last_plan_days",),
    "free_last": ("last_amount_paid", "free_count"),
    "discount_last": ("last_list_price", "discount_count"),
    "method_41": ("last_payment_method_id",),
    "newness": ("tenure_days", "tx_count", "tx_count_90", "total_paid", "total_plan_days"),
    "trend": (
        "secs_7",
        "secs_14",
        "secs_30",
        "secs_44",
        "secs_60",
        "secs_total",
        "songs_30",
        "num_25_30",
        "num_100_30",
        "unq_30",
    ),
    "silent_days": ("days_since_last_log", "log_days_total"),
    "active_30": ("active_days_7", "active_days_14", "active_days_30", "active_days_44"),
    "no_profile": ("city", "bd", "gender", "registered_via", "registration_age_days"),
    "days_to_expiry": ("days_to_expiry", "days_since_last_transaction"),
}


@dataclass(frozen=True)
class Agreement:
    rank_correlation: float  # median over users of Spearman's rho, model vs oracle per driver
    top_reason: float  # share of users whose largest risk-raising reason is the oracle's
    top_reason_in_oracle_top3: float  # ... is among the oracle's three largest
    users: int

    def as_metrics(self) -> dict[str, float]:
        return {
            "explanation_rank_correlation": self.rank_correlation,
            "explanation_top_reason_agreement": self.top_reason,
            "explanation_top_reason_in_oracle_top3": self.top_reason_in_oracle_top3,
        }


def by_driver(contributions: pd.DataFrame) -> pd.DataFrame:
    """The model's reasons per gold feature, summed per oracle driver."""
    return pd.DataFrame(
        {d: contributions[list(f)].sum(axis=1) for d, f in DRIVER_FEATURES.items()},
        index=contributions.index,
    )


def _row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))


def agreement(contributions: pd.DataFrame, terms: pd.DataFrame) -> Agreement:
    """Compare the model's reasons (rows of users, gold feature columns) with the oracle's
    terms of the same users in the same order (rows, driver columns)."""
    if len(contributions) != len(terms):
        raise ValueError(f"{len(contributions)} explained users but {len(terms)} oracle rows")
    model = by_driver(contributions).to_numpy()
    truth = terms[list(DRIVER_FEATURES)].to_numpy(float)
    truth = truth - truth.mean(axis=0)
    rho = _row_spearman(model, truth)
    top = model.argmax(axis=1)
    oracle_top3 = np.argsort(-truth, axis=1)[:, :3]
    return Agreement(
        rank_correlation=float(np.nanmedian(rho)),
        top_reason=float(np.mean(top == oracle_top3[:, 0])),
        top_reason_in_oracle_top3=float(np.mean((oracle_top3 == top[:, None]).any(axis=1))),
        users=len(terms),
    )
